package exporter

import (
	"strings"
	"testing"

	_ "jsn.dev/jsn/drivers/process" // type process
)

func TestDriverPolicy(t *testing.T) {
	const head = "apiVersion: jsn.dev/v1alpha1\nkind: ExporterConfig\nmetadata: {name: lab}\n"
	const export = `export:
  power:
    type: cfgtest.Power
  old:
    type: jumpstarter_driver_cfgtest.driver.MockPower
  box:
    type: composite
    children:
      relay:
        type: process
        config: {command: [/usr/bin/python3, -m, jsn_driver, relay.py]}
  tool:
    type: process
    config: {command: [bin/flash-helper, --fast]}
`
	for _, tt := range []struct {
		name, policy string
		want         []string // error lines, in order; none: the config loads
	}{
		{"no policy: today's behaviour", "", nil},
		{"everything listed", "drivers: {allow: [cfgtest.*, composite, process]}\n", nil},
		{"an alias matches through its registered type", "drivers: {allow: [cfgtest.Power, composite, process]}\n", nil},
		{"types refused", "drivers: {allow: [cfgtest.Power, composite]}\n", []string{
			`lab.yaml:14:15: export.box.children.relay.type: driver type "process" is not in drivers.allow (cfgtest.Power, composite)`,
			`lab.yaml:17:11: export.tool.type: driver type "process" is not in drivers.allow (cfgtest.Power, composite)`,
		}},
		{"programs allowed by path and by glob", "drivers:\n  commands: [/usr/bin/python3, $DIR/bin/*]\n", nil},
		{"a whole command line", "drivers:\n  commands: [/usr/bin/python3 -m jsn_driver relay.py, $DIR/bin/flash-helper --fast]\n", nil},
		{"programs refused", "drivers:\n  commands: [/opt/drivers/*]\n", []string{
			`lab.yaml:16:28: export.box.children.relay.config.command: program /usr/bin/python3 is not in drivers.commands (/opt/drivers/*)`,
			`lab.yaml:19:24: export.tool.config.command: program bin/flash-helper is not in drivers.commands (/opt/drivers/*)`,
		}},
		{"a bad glob", "drivers: {allow: [\"power[\"]}\n", []string{
			`lab.yaml:4:18: drivers.allow: invalid entry "power[": want a name, path or glob`,
			`lab.yaml:7:11: export.power.type: driver type "cfgtest.Power" is not in drivers.allow (power[)`,
			`lab.yaml:9:11: export.old.type: driver type "jumpstarter_driver_cfgtest.driver.MockPower" is not in drivers.allow (power[)`,
			`lab.yaml:11:11: export.box.type: driver type "composite" is not in drivers.allow (power[)`,
			`lab.yaml:14:15: export.box.children.relay.type: driver type "process" is not in drivers.allow (power[)`,
			`lab.yaml:17:11: export.tool.type: driver type "process" is not in drivers.allow (power[)`,
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := dir + "/lab.yaml"
			text := head + strings.ReplaceAll(tt.policy, "$DIR", dir) + export
			_, err := ParseConfig(file, []byte(text))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ParseConfig: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("ParseConfig accepted the config")
			}
			got := strings.ReplaceAll(err.Error(), dir+"/", "") // the program's directory too
			want := strings.ReplaceAll(strings.Join(tt.want, "\n"), "$DIR", dir)
			if got != want {
				t.Fatalf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}
