package flasher

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/fileserver"
	"jsn.dev/jsn/drivers/power"
	"jsn.dev/jsn/drivers/serial"
	"jsn.dev/jsn/drivers/uboot"
)

func init() {
	driver.MustRegister(driver.Info{
		Type: "flasher.UBoot", Interface: Interface,
		Doc: "writes images to a board's storage through U-Boot (tftpboot/wget + mmc/usb/virtio/scsi write)",
		New: NewUBoot,
		Aliases: []string{"jumpstarter_driver_flashers.driver.BaseFlasher",
			"jumpstarter_driver_flashers.driver.TIJ784S4Flasher", "jumpstarter_driver_flashers.driver.RCarS4Flasher"},
	})
}

// blockDevices are the U-Boot block commands the flasher knows, with what selects device N.
var blockDevices = map[string][]string{
	"mmc":    {"mmc dev {dev}"},
	"usb":    {"usb start", "usb dev {dev}"},
	"virtio": {"virtio scan", "virtio dev {dev}"},
	"scsi":   {"scsi scan", "scsi dev {dev}"},
	"sata":   {"sata init", "sata dev {dev}"},
	"nvme":   {"nvme scan", "nvme dev {dev}"},
}

// UBoot flashes through U-Boot.
//
// Children: `serial` (the console; required unless `uboot` is given), `power` (optional: to
// reboot into U-Boot), `uboot` (a uboot.Console to use instead of making one on serial/power),
// and `tftp` / `http` (fileserver drivers the board loads the image from). As Jumpstarter's
// flashers do, a `tftp` or `http` child not written in the config is made by the flasher itself
// (built-in children, shown by describe) serving tftp_dir / http_dir on host:tftp_port /
// host:http_port.
//
// Config (Jumpstarter's BaseFlasher keys are accepted; of them default_target, tftp_dir and
// http_dir are used):
//
//	default_target: "mmc 0"      # "<mmc|usb|virtio|scsi|sata|nvme> <dev>" or a key of targets
//	targets: {emmc: "mmc 0"}     # names for targets
//	method: tftp                 # tftp | http: which file server child the board loads from
//	load_addr: "${loadaddr}"     # where U-Boot loads the image (RAM must hold it whole)
//	setup: ["setenv autoload no", "dhcp"]   # U-Boot commands before loading (network up)
//	server_ip: ""                # serverip for tftpboot (default: the file server's advertised host)
//	load_command: ""             # default: tftpboot {addr} {name} | wget {addr} {url}
//	block_size: 512
//	verify: true                 # crc32 of the loaded image checked against the file
//	boot_timeout: 2m
//	load_timeout: 10m
//	write_timeout: 30m
//	tftp_dir: ""                 # root of the own TFTP server (default: $TMPDIR/jsn-flasher/<path>/tftp)
//	http_dir: ""                 # root of the own HTTP server (default: $TMPDIR/jsn-flasher/<path>/http)
//	host: ""                     # address the own servers listen on; "" = every address
//	advertise: ""                # host the board reaches them by (default: the exporter's outbound address)
//	tftp_port: 69                # port 69 needs root or CAP_NET_BIND_SERVICE; 0 picks a free port
//	http_port: 8080
type UBoot struct {
	DefaultTarget string            `yaml:"default_target"`
	Targets       map[string]string `yaml:"targets"`
	Method        string            `yaml:"method"`
	LoadAddr      string            `yaml:"load_addr"`
	Setup         []string          `yaml:"setup"`
	ServerIP      string            `yaml:"server_ip"`
	LoadCommand   string            `yaml:"load_command"`
	BlockSize     int               `yaml:"block_size"`
	Verify        bool              `yaml:"verify"`
	BootTimeout   time.Duration     `yaml:"boot_timeout"`
	LoadTimeout   time.Duration     `yaml:"load_timeout"`
	WriteTimeout  time.Duration     `yaml:"write_timeout"`

	// Jumpstarter BaseFlasher keys: accepted; jsn does not pull OCI flasher bundles.
	FlasherBundle string `yaml:"flasher_bundle"`
	Variant       string `yaml:"variant"`
	Manifest      string `yaml:"manifest"`
	CacheDir      string `yaml:"cache_dir"`
	TFTPDir       string `yaml:"tftp_dir"`
	HTTPDir       string `yaml:"http_dir"`

	// The own file servers (made when the config gives no tftp / http child).
	Host      string `yaml:"host"`
	Advertise string `yaml:"advertise"`
	TFTPPort  int    `yaml:"tftp_port"`
	HTTPPort  int    `yaml:"http_port"`

	log  *slog.Logger
	env  driver.Env
	auto map[string]fileserver.Device // built-in file servers by child name

	console *uboot.Console
	power   power.Device
	files   fileserver.Device // the child for Method
	mu      sync.Mutex        // one flash at a time
}

// NewUBoot is the flasher.UBoot constructor: defaults only, no side effects.
func NewUBoot(env driver.Env) driver.Driver {
	return &UBoot{Method: "tftp", LoadAddr: "${loadaddr}", Setup: []string{"setenv autoload no", "dhcp"}, BlockSize: 512,
		Verify: true, BootTimeout: 2 * time.Minute, LoadTimeout: 10 * time.Minute, WriteTimeout: 30 * time.Minute,
		TFTPPort: 69, HTTPPort: 8080, log: env.Log, env: env}
}

// AutoChildren makes the `tftp` and `http` file servers the config does not give, as
// Jumpstarter's BaseFlasher does.
func (u *UBoot) AutoChildren(given map[string]bool) []driver.Child {
	var kids []driver.Child
	for _, a := range []struct {
		name, dir, portKey string
		port               int
	}{{"tftp", u.TFTPDir, "tftp_port", u.TFTPPort}, {"http", u.HTTPDir, "http_port", u.HTTPPort}} {
		if given[a.name] {
			continue
		}
		dir := a.dir
		if dir == "" {
			dir = filepath.Join(os.TempDir(), "jsn-flasher", u.env.Path, a.name)
		}
		hint := fmt.Sprintf("set the flasher's %s (0 picks a free port)", a.portKey)
		if a.port > 0 && a.port < 1024 {
			hint = fmt.Sprintf("set the flasher's %s (port %d needs root or CAP_NET_BIND_SERVICE; 0 picks a free port)", a.portKey, a.port)
		}
		common := fileserver.Common{RootDir: dir, Host: u.Host, Port: a.port, Advertise: u.Advertise, RemoveCreatedOnClose: true, ListenHint: hint}
		var d driver.Driver
		var typ string
		switch a.name {
		case "tftp":
			t := fileserver.NewTFTP(u.env.Child(a.name)).(*fileserver.TFTP)
			t.Common, d, typ = common, t, "fileserver.TFTP"
		default:
			h := fileserver.NewHTTP(u.env.Child(a.name)).(*fileserver.HTTP)
			h.Common, d, typ = common, h, "fileserver.HTTP"
		}
		if u.auto == nil {
			u.auto = map[string]fileserver.Device{}
		}
		u.auto[a.name] = d.(fileserver.Device)
		kids = append(kids, driver.Child{Name: a.name, Type: typ, Driver: d})
	}
	return kids
}

var (
	addrRE   = regexp.MustCompile(`^(0x[0-9a-fA-F]+|[0-9a-fA-F]+|\$\{[A-Za-z0-9_]+\})$`)
	targetRE = regexp.MustCompile(`^([a-z]+) ([0-9]+)$`)
)

// Validate checks the config.
func (u *UBoot) Validate() error {
	var errs []error
	add := func(k, f string, a ...any) { errs = append(errs, driver.FieldErrorf(k, f, a...)) }
	switch u.Method {
	case "tftp", "http":
	default:
		add("method", `want "tftp" or "http", got %q`, u.Method)
	}
	if !addrRE.MatchString(u.LoadAddr) {
		add("load_addr", "want a hex address (0x82000000) or ${variable}, got %q", u.LoadAddr)
	}
	if u.BlockSize < 1 || u.BlockSize&(u.BlockSize-1) != 0 || u.BlockSize > 1<<16 {
		add("block_size", "want a power of two up to 65536, got %d", u.BlockSize)
	}
	if u.DefaultTarget != "" {
		if _, err := u.target(u.DefaultTarget); err != nil {
			add("default_target", "%v", err)
		}
	}
	names := make([]string, 0, len(u.Targets))
	for n := range u.Targets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, _, err := parseTarget(u.Targets[n]); err != nil {
			add("targets."+n, "%v", err)
		}
	}
	for i, c := range u.Setup {
		if c == "" || strings.ContainsAny(c, "\r\n") {
			add(fmt.Sprintf("setup[%d]", i), "want one U-Boot command line, got %q", c)
		}
	}
	if u.Host != "" && net.ParseIP(u.Host) == nil {
		add("host", "want an IP address to listen on, got %q", u.Host)
	}
	if u.Advertise != "" && (len(u.Advertise) > 253 || url.PathEscape(u.Advertise) != u.Advertise) {
		add("advertise", "want a host name or IP address, got %q", u.Advertise)
	}
	for _, p := range []struct {
		k string
		v int
	}{{"tftp_port", u.TFTPPort}, {"http_port", u.HTTPPort}} {
		if p.v < 0 || p.v > 65535 {
			add(p.k, "%d is out of range (0..65535; 0 picks a free port)", p.v)
		}
	}
	if u.ServerIP != "" && net.ParseIP(u.ServerIP) == nil {
		add("server_ip", "want an IP address, got %q", u.ServerIP)
	}
	if strings.ContainsAny(u.LoadCommand, "\r\n") {
		add("load_command", "want one command line")
	}
	for _, f := range []struct {
		k string
		d time.Duration
	}{{"boot_timeout", u.BootTimeout}, {"load_timeout", u.LoadTimeout}, {"write_timeout", u.WriteTimeout}} {
		if f.d <= 0 {
			add(f.k, "must be more than 0, got %s", f.d)
		}
	}
	return errors.Join(errs...)
}

func parseTarget(s string) (iface string, dev int, err error) {
	m := targetRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return "", 0, fmt.Errorf("target %q: want \"<interface> <device number>\", e.g. \"mmc 0\"", s)
	}
	if _, ok := blockDevices[m[1]]; !ok {
		known := make([]string, 0, len(blockDevices))
		for k := range blockDevices {
			known = append(known, k)
		}
		sort.Strings(known)
		return "", 0, fmt.Errorf("target %q: unknown interface %q (known: %s)", s, m[1], strings.Join(known, ", "))
	}
	dev, err = strconv.Atoi(m[2])
	if err != nil || dev > 255 {
		return "", 0, fmt.Errorf("target %q: device number out of range", s)
	}
	return m[1], dev, nil
}

// target resolves a name of targets or a literal target.
func (u *UBoot) target(s string) (string, error) {
	if t, ok := u.Targets[s]; ok {
		s = t
	}
	if _, _, err := parseTarget(s); err != nil {
		return "", err
	}
	return s, nil
}

// UseChildren takes the console (serial/power or uboot) and the file server children.
func (u *UBoot) UseChildren(children map[string]driver.Driver) error {
	var errs []error
	var ser serial.Device
	for name, d := range children {
		switch name {
		case "serial":
			s, ok := d.(serial.Device)
			if !ok {
				errs = append(errs, fmt.Errorf("child \"serial\" must be a %s driver, got %T", serial.Interface, d))
			}
			ser = s
		case "power":
			p, ok := d.(power.Device)
			if !ok {
				errs = append(errs, fmt.Errorf("child \"power\" must be a %s driver, got %T", power.Interface, d))
			}
			u.power = p
		case "uboot":
			c, ok := d.(*uboot.Console)
			if !ok {
				errs = append(errs, fmt.Errorf("child \"uboot\" must be a uboot.Console, got %T", d))
			}
			u.console = c
		case "tftp", "http":
			f, ok := d.(fileserver.Device)
			if !ok {
				errs = append(errs, fmt.Errorf("child %q must be a %s driver (fileserver.TFTP, fileserver.HTTP), got %T", name, fileserver.Interface, d))
			} else if name == u.Method {
				u.files = f
			}
		}
	}
	if u.console == nil {
		if _, given := children["serial"]; !given {
			errs = append(errs, errors.New(`child "serial" is required (the board's console), or a "uboot" child`))
		} else if ser != nil {
			u.console = uboot.New(u.log, ser, u.power)
		}
	}
	if u.files == nil && children[u.Method] == nil {
		u.files = u.auto[u.Method]
	}
	if _, ok := children[u.Method]; !ok && u.files == nil {
		errs = append(errs, fmt.Errorf("child %q is required with method %s: the file server the board loads images from (type fileserver.%s)",
			u.Method, u.Method, strings.ToUpper(u.Method)))
	}
	return errors.Join(errs...)
}

// Open does nothing: the children do the work.
func (u *UBoot) Open(ctx context.Context) error {
	if u.FlasherBundle != "" {
		u.log.Info("flasher_bundle is ignored: jsn flashes through U-Boot directly", "flasher_bundle", u.FlasherBundle)
	}
	return nil
}

// Reset does nothing (the file server child removes the lease's uploads).
func (u *UBoot) Reset(ctx context.Context) error { return nil }

// Close does nothing.
func (u *UBoot) Close() error { return nil }

// HasPower reports whether there is a power child (in the flasher or its uboot child).
func (u *UBoot) HasPower() bool { return u.console != nil && u.console.CanReboot() }

// Methods serves jsn.flasher.v1.
func (u *UBoot) Methods() []driver.Method { return Methods(u, Options{}) }

// Upload stores the image on the file server child.
func (u *UBoot) Upload(ctx context.Context, name string, r io.Reader) (fileserver.FileInfo, error) {
	if u.files == nil {
		return fileserver.FileInfo{}, wire.Errorf(wire.FailedPrecondition, "upload: no %s child", u.Method)
	}
	return u.files.Put(ctx, name, r)
}

// Flash writes the uploaded image req.Name to the target.
func (u *UBoot) Flash(ctx context.Context, req Request, progress func(Progress)) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.files == nil || u.console == nil {
		return wire.Errorf(wire.FailedPrecondition, "flash: the flasher's children are not configured")
	}
	target := req.Target
	if target == "" {
		target = u.DefaultTarget
	}
	if target == "" {
		return wire.Errorf(wire.InvalidArgument, "flash: no target given and no default_target configured")
	}
	t, err := u.target(target)
	if err != nil {
		return wire.Errorf(wire.InvalidArgument, "flash: %v", err)
	}
	iface, dev, _ := parseTarget(t)
	name, err := fileserver.CleanName(req.Name)
	if err != nil {
		return wire.Errorf(wire.InvalidArgument, "flash: %v", err)
	}
	// The image: its size and CRC-32, read on the exporter.
	size, sum, err := u.checksum(ctx, name)
	if err != nil {
		return err
	}
	if size == 0 {
		return wire.Errorf(wire.InvalidArgument, "flash: %s is empty", name)
	}
	link, err := u.files.URL(name)
	if err != nil {
		return fmt.Errorf("flash: %w", err)
	}
	lu, _ := url.Parse(link)

	// 1. U-Boot's prompt.
	progress(Progress{Phase: "console"})
	bctx, cancel := context.WithTimeout(ctx, u.BootTimeout)
	if req.Reboot {
		err = u.console.RebootToConsole(bctx)
	} else {
		err = u.console.Interrupt(bctx)
	}
	cancel()
	if err != nil {
		return fmt.Errorf("flash: %w", err)
	}
	run := func(phase, cmd string, d time.Duration, out func([]byte)) (uboot.Result, error) {
		progress(Progress{Phase: phase, Command: cmd})
		cctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		r, err := u.console.RunChecked(cctx, cmd, out)
		if err != nil {
			return r, fmt.Errorf("flash: %w", err)
		}
		return r, nil
	}
	// 2. Network.
	for _, c := range u.Setup {
		if _, err := run("setup", c, u.LoadTimeout, nil); err != nil {
			return err
		}
	}
	addr := u.LoadAddr
	vars := map[string]string{"addr": addr, "name": name, "url": link, "host": lu.Hostname(), "port": lu.Port()}
	load := u.LoadCommand
	if load == "" {
		load = map[string]string{"tftp": "tftpboot {addr} {name}", "http": "wget {addr} {url}"}[u.Method]
	}
	if u.Method == "tftp" {
		ip := u.ServerIP
		if ip == "" {
			ip = lu.Hostname()
		}
		if lu.Port() != "" && lu.Port() != "69" {
			u.log.Warn("the TFTP server is not on port 69; U-Boot's tftpboot asks port 69 unless built with CONFIG_TFTP_PORT (tftpdstp)", "port", lu.Port())
			if _, err := run("setup", "setenv tftpdstp "+lu.Port(), u.LoadTimeout, nil); err != nil {
				return err
			}
		}
		if _, err := run("setup", "setenv serverip "+ip, u.LoadTimeout, nil); err != nil {
			return err
		}
	}
	// 3. Load, with the server's view of the transfer as progress.
	var stopWatch func()
	if w, ok := u.files.(fileserver.Watcher); ok {
		var last time.Time
		stopWatch = w.Watch(name, func(sent, total int64) {
			if sent == total || time.Since(last) >= 250*time.Millisecond {
				last = time.Now()
				progress(Progress{Phase: "load", Bytes: sent, Total: total})
			}
		})
	}
	_, err = run("load", expand(load, vars), u.LoadTimeout, nil)
	if stopWatch != nil {
		stopWatch()
	}
	if err != nil {
		return err
	}
	fsz, err := u.envHex(ctx, "filesize")
	if err == nil && fsz != uint64(size) {
		return wire.Errorf(wire.FailedPrecondition, "flash: U-Boot loaded %d bytes of %s, the file has %d", fsz, name, size)
	}
	// 4. Verify.
	if u.Verify {
		r, err := run("verify", fmt.Sprintf("crc32 %s %x", addr, size), u.LoadTimeout, nil)
		if err != nil {
			return err
		}
		got, ok := parseCRC(r.Output)
		switch {
		case !ok:
			return wire.Errorf(wire.FailedPrecondition, "flash: cannot read the crc32 output %q (set verify: false if this U-Boot has no crc32)", strings.TrimSpace(r.Output))
		case got != sum:
			return wire.Errorf(wire.FailedPrecondition, "flash: the image in the board's RAM is damaged: crc32 %08x, the file's is %08x", got, sum)
		}
	}
	// 5. Write.
	for _, c := range blockDevices[iface] {
		if _, err := run("write", strings.ReplaceAll(c, "{dev}", strconv.Itoa(dev)), u.LoadTimeout, nil); err != nil {
			return err
		}
	}
	blocks := (size + int64(u.BlockSize) - 1) / int64(u.BlockSize)
	wr := fmt.Sprintf("%s write %s 0x0 0x%x", iface, addr, blocks)
	r, err := run("write", wr, u.WriteTimeout, nil)
	if err != nil {
		return err
	}
	if n, ok := writtenBlocks(r.Output); ok && n != blocks {
		return wire.Errorf(wire.FailedPrecondition, "flash: U-Boot command %q wrote %d blocks of %d: %s", wr, n, blocks, strings.TrimSpace(r.Output))
	}
	progress(Progress{Phase: "done", Bytes: size, Total: size, Command: wr})
	u.log.Info("flashed", "image", name, "bytes", size, "target", t)
	return nil
}

// checksum reads the image's size and CRC-32 (IEEE, as U-Boot's crc32) from the file server.
func (u *UBoot) checksum(ctx context.Context, name string) (int64, uint32, error) {
	h := crc32.NewIEEE()
	cw := &countWriter{w: h}
	if err := u.files.Get(ctx, name, cw); err != nil {
		return 0, 0, fmt.Errorf("flash: %w", err)
	}
	return cw.n, h.Sum32(), nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// envHex reads a hex environment variable (filesize).
func (u *UBoot) envHex(ctx context.Context, name string) (uint64, error) {
	cctx, cancel := context.WithTimeout(ctx, u.LoadTimeout)
	defer cancel()
	v, err := u.console.GetEnv(cctx, name)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(v), "0x"), 16, 64)
}

func expand(tmpl string, vars map[string]string) string {
	for k, v := range vars {
		tmpl = strings.ReplaceAll(tmpl, "{"+k+"}", v)
	}
	return tmpl
}

var (
	crcRE     = regexp.MustCompile(`==>\s*([0-9a-fA-F]{8})`)
	blocksRE  = regexp.MustCompile(`(?i)\b([0-9]+) blocks written`)
	blocksRE2 = regexp.MustCompile(`(?i)blocks written:\s*([0-9]+)`)
)

// parseCRC reads U-Boot's "crc32 for 02000000 ... 0200ffff ==> 1a2b3c4d".
func parseCRC(out string) (uint32, bool) {
	m := crcRE.FindStringSubmatch(out)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseUint(m[1], 16, 32)
	return uint32(v), err == nil
}

// writtenBlocks reads "N blocks written: OK" (mmc, usb, virtio, scsi print this).
func writtenBlocks(out string) (int64, bool) {
	m := blocksRE.FindStringSubmatch(out)
	if m == nil {
		m = blocksRE2.FindStringSubmatch(out)
	}
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	return n, err == nil
}

var (
	_ Device           = (*UBoot)(nil)
	_ driver.Validator = (*UBoot)(nil)
	_ driver.ChildUser = (*UBoot)(nil)
	_ driver.Methoder  = (*UBoot)(nil)
)
