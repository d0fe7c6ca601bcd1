package kerneltest

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// initScript is the guest's /init: it loads the modules (in /lib/modules/order), configures
// the network for QEMU user networking, makes the devices the options asked for, then runs the
// commands the host sends on the console: "ID BASE64" lines, each answered by its output and
// "@@JSN-DONE-ID STATUS@@".
const initScript = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmp /tmp
dmesg -n 1
for m in $(cat /lib/modules/order); do
  insmod /lib/modules/$m || echo "jsn-guest: insmod $m failed"
done
ip link set lo up
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
[ -f /etc/jsn-setup ] && . /etc/jsn-setup
stty -echo -onlcr 2>/dev/null
echo JSN-GUEST-READY
while IFS=' ' read -r id cmd; do
  [ -n "$id" ] || continue
  echo "$cmd" | base64 -d > /tmp/.cmd 2>/dev/null
  sh /tmp/.cmd </dev/null 2>&1
  echo "@@JSN-DONE-$id $?@@"
done
poweroff -f
`

// gpioSetup makes the simulated chip through gpio-sim's configfs interface, and /bin/simdir,
// which prints the chip's sysfs directory (where sim_gpioN/pull and value are).
const gpioSetup = `mkdir -p /sys/kernel/config && mount -t configfs none /sys/kernel/config
d=/sys/kernel/config/gpio-sim/jsn
mkdir $d $d/bank0
echo %d > $d/bank0/num_lines
echo %s > $d/bank0/label
i=0; while [ $i -lt %d ]; do mkdir $d/bank0/line$i; echo sim$i > $d/bank0/line$i/name; i=$((i+1)); done
echo 1 > $d/live || echo "jsn-guest: gpio-sim did not go live"
printf '#!/bin/sh\necho /sys/devices/platform/$(cat %s/dev_name)/$(cat %s/bank0/chip_name)\n' > /bin/simdir
chmod +x /bin/simdir
`

const canSetup = `for n in vcan0 vcan1; do
  ip link add dev $n type vcan || echo "jsn-guest: cannot add $n"
  ip link set $n up
done
`

func writeInitramfs(out, busybox, guestBin string, modules []string, o Options) error {
	var buf bytes.Buffer
	w := &cpioWriter{w: &buf}
	for _, d := range []string{"bin", "dev", "etc", "proc", "sys", "tmp", "lib", "lib/modules"} {
		w.add(d, 0o40755, nil, 0, 0)
	}
	w.add("dev/console", 0o20600, nil, 5, 1)
	add := func(name string, mode int, path string) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		w.add(name, mode, b, 0, 0)
		return nil
	}
	if err := add("bin/busybox", 0o100755, busybox); err != nil {
		return err
	}
	if err := add("bin/jsnguest", 0o100755, guestBin); err != nil {
		return err
	}
	w.add("init", 0o100755, []byte(initScript), 0, 0)
	var order []string
	for _, m := range modules {
		name := filepath.Base(m)
		if err := add("lib/modules/"+name, 0o100644, m); err != nil {
			return fmt.Errorf("module %s: %w", m, err)
		}
		order = append(order, name)
	}
	w.add("lib/modules/order", 0o100644, []byte(strings.Join(order, "\n")+"\n"), 0, 0)
	var setup strings.Builder
	if o.GPIO {
		fmt.Fprintf(&setup, gpioSetup, SimLines, SimChip, SimLines, "/sys/kernel/config/gpio-sim/jsn", "/sys/kernel/config/gpio-sim/jsn")
	}
	if o.CAN {
		setup.WriteString(canSetup)
	}
	w.add("etc/jsn-setup", 0o100644, []byte(setup.String()), 0, 0)
	names := make([]string, 0, len(o.Files))
	for n := range o.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		clean := strings.TrimPrefix(filepath.Clean("/"+n), "/")
		if dir := filepath.Dir(clean); dir != "." && dir != "bin" && dir != "etc" && dir != "lib" {
			w.add(dir, 0o40755, nil, 0, 0)
		}
		if err := add(clean, 0o100755, o.Files[n]); err != nil {
			return err
		}
	}
	dirs := map[string]bool{"bin": true, "etc": true, "lib": true}
	for _, prog := range o.Programs {
		path, err := exec.LookPath(prog)
		if err != nil {
			return skipf("%s not installed", prog)
		}
		if err := add("bin/"+filepath.Base(path), 0o100755, path); err != nil {
			return err
		}
		libs, err := sharedLibs(path)
		if err != nil {
			return err
		}
		for _, l := range libs {
			rel := strings.TrimPrefix(l, "/")
			if dirs[rel] {
				continue
			}
			var parents []string
			for d := filepath.Dir(rel); d != "." && !dirs[d]; d = filepath.Dir(d) {
				dirs[d] = true
				parents = append([]string{d}, parents...)
			}
			for _, d := range parents {
				w.add(d, 0o40755, nil, 0, 0)
			}
			if err := add(rel, 0o100755, l); err != nil {
				return err
			}
			dirs[rel] = true
		}
	}
	w.trailer()
	if w.err != nil {
		return w.err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

// cpioWriter writes the newc ("070701") cpio format the kernel unpacks.
type cpioWriter struct {
	w   io.Writer
	ino int
	err error
}

func (c *cpioWriter) add(name string, mode int, data []byte, rmajor, rminor int) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := 1
	if mode&0o170000 == 0o40000 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmajor, rminor, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write(append([]byte(name), 0))
	c.pad(len(hdr) + len(name) + 1)
	c.write(data)
	c.pad(len(data))
}

func (c *cpioWriter) trailer() {
	c.add("TRAILER!!!", 0, nil, 0, 0)
}

func (c *cpioWriter) write(b []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(b)
	}
}

func (c *cpioWriter) pad(n int) {
	if r := n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// sharedLibs returns the shared libraries and the loader a dynamic program needs, resolved to
// real files (ldd's "=> /path" and the interpreter's absolute path).
func sharedLibs(path string) ([]string, error) {
	if isStatic(path) {
		return nil, nil
	}
	out, err := exec.Command("ldd", path).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %v", path, err)
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0])
		}
	}
	var real []string
	for _, l := range libs {
		real = append(real, l)
		if r, err := filepath.EvalSymlinks(l); err == nil && r != l {
			real = append(real, r)
		}
	}
	return real, nil
}
