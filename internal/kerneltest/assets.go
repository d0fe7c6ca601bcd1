package kerneltest

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
)

// ErrSkip wraps the reason a guest cannot be booted on this machine (a missing package).
var ErrSkip = errors.New("kerneltest: cannot boot a guest here")

func skipf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSkip, fmt.Sprintf(format, args...))
}

// Kernel is a kernel release with its image and modules.
type Kernel struct {
	Release string // "6.1.0-57-amd64"
	Image   string // /boot/vmlinuz-<Release>
	Modules string // /lib/modules/<Release>
	Headers string // /lib/modules/<Release>/build, "" when not installed
}

// FindKernel returns the newest generic (not cloud) kernel whose image and modules are
// installed; with headers, only one whose headers are installed too.
func FindKernel(headers bool) (Kernel, error) {
	if runtime.GOARCH != "amd64" {
		return Kernel{}, skipf("the guest is x86-64, this is %s", runtime.GOARCH)
	}
	images, _ := filepath.Glob("/boot/vmlinuz-*-amd64")
	var ks []Kernel
	for _, img := range images {
		rel := strings.TrimPrefix(filepath.Base(img), "vmlinuz-")
		if strings.HasSuffix(rel, "-cloud-amd64") || strings.HasSuffix(rel, "-rt-amd64") {
			continue
		}
		k := Kernel{Release: rel, Image: img, Modules: filepath.Join("/lib/modules", rel)}
		if _, err := os.Stat(filepath.Join(k.Modules, "modules.dep")); err != nil {
			continue
		}
		if f, err := os.Open(img); err != nil {
			continue
		} else {
			f.Close()
		}
		if _, err := os.Stat(filepath.Join(k.Modules, "build", "Makefile")); err == nil {
			k.Headers = filepath.Join(k.Modules, "build")
		}
		if headers && k.Headers == "" {
			continue
		}
		ks = append(ks, k)
	}
	if len(ks) == 0 {
		if headers {
			return Kernel{}, skipf("no /boot/vmlinuz-*-amd64 with its modules and headers (Debian packages linux-image-amd64, linux-headers-amd64)")
		}
		return Kernel{}, skipf("no /boot/vmlinuz-*-amd64 with its modules (Debian package linux-image-amd64)")
	}
	sort.Slice(ks, func(i, j int) bool { return versionLess(ks[i].Release, ks[j].Release) })
	return ks[len(ks)-1], nil
}

// versionLess orders releases like "6.1.0-9-amd64" < "6.1.0-57-amd64".
func versionLess(a, b string) bool {
	fa, fb := strings.FieldsFunc(a, notDigit), strings.FieldsFunc(b, notDigit)
	for i := 0; i < len(fa) && i < len(fb); i++ {
		if len(fa[i]) != len(fb[i]) {
			return len(fa[i]) < len(fb[i])
		}
		if fa[i] != fb[i] {
			return fa[i] < fb[i]
		}
	}
	return len(fa) < len(fb)
}

func notDigit(r rune) bool { return r < '0' || r > '9' }

// modulePaths returns the files of the named modules and of everything they depend on, in load
// order (dependencies first), from the kernel's modules.dep.
func (k Kernel) modulePaths(names ...string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(k.Modules, "modules.dep"))
	if err != nil {
		return nil, err
	}
	deps := map[string][]string{} // module name → its file then its dependencies' files
	byName := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		file, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		name := modName(file)
		byName[name] = file
		deps[name] = strings.Fields(rest)
	}
	var order []string
	seen := map[string]bool{}
	var visit func(name string) error
	visit = func(name string) error {
		if seen[name] {
			return nil
		}
		seen[name] = true
		file, ok := byName[name]
		if !ok {
			return fmt.Errorf("module %s: not in %s/modules.dep (built in, or not built)", name, k.Modules)
		}
		for _, d := range deps[name] {
			if err := visit(modName(d)); err != nil {
				return err
			}
		}
		order = append(order, filepath.Join(k.Modules, file))
		return nil
	}
	for _, n := range names {
		if err := visit(strings.ReplaceAll(n, "-", "_")); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// modName is the module name of a module file: "kernel/net/can/can-raw.ko.xz" → "can_raw".
func modName(file string) string {
	base := filepath.Base(file)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// staticBusybox returns the path of a statically linked busybox.
func staticBusybox() (string, error) {
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if isStatic(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("busybox"); err == nil && isStatic(p) {
		return p, nil
	}
	return "", skipf("no statically linked busybox (Debian package busybox-static)")
}

func isStatic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// cacheDir returns (and makes) the cache directory of kernel release rel.
func cacheDir(rel string) (string, error) {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		base = filepath.Join(home, ".cache")
	}
	dir := filepath.Join(base, "jsn", "kerneltest", rel)
	return dir, os.MkdirAll(dir, 0o755)
}

// gpioSimRecipe names the way the module is built; a change of it makes a new cache entry.
const gpioSimRecipe = "gpio-sim-r1"

// GPIOSimModule returns the path of the out-of-tree gpio-sim module for k, building it into the
// cache on first use (see the package doc).
func GPIOSimModule(k Kernel) (string, error) {
	if k.Headers == "" {
		return "", skipf("no headers for %s (Debian package linux-headers-amd64)", k.Release)
	}
	dir, err := cacheDir(k.Release)
	if err != nil {
		return "", err
	}
	ko := filepath.Join(dir, gpioSimRecipe+".ko")
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(ko); err == nil {
		return ko, nil
	}
	srcs, _ := filepath.Glob("/usr/src/linux-source-*.tar.xz")
	major := strings.Join(strings.SplitN(k.Release, ".", 3)[:2], ".") // "6.1"
	src := ""
	for _, s := range srcs {
		if strings.HasSuffix(s, "linux-source-"+major+".tar.xz") {
			src = s
		}
	}
	if src == "" {
		return "", skipf("no /usr/src/linux-source-%s.tar.xz (Debian package linux-source)", major)
	}
	for _, tool := range []string{"make", "gcc", "xz", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", skipf("%s not installed (Debian packages make, gcc, xz-utils)", tool)
		}
	}
	work, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	top := "linux-source-" + major
	files := []string{"drivers/gpio/gpio-sim.c", "drivers/gpio/gpiolib.h", "kernel/irq/irq_sim.c"}
	args := []string{"-xJf", src, "-C", work, "--strip-components=1"}
	for _, f := range files {
		args = append(args, top+"/"+f)
	}
	if out, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("unpack gpio-sim sources from %s: %v\n%s", src, err, out)
	}
	mod := filepath.Join(work, "mod")
	if err := os.Mkdir(mod, 0o755); err != nil {
		return "", err
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(work, f))
		if err != nil {
			return "", err
		}
		if filepath.Base(f) == "irq_sim.c" {
			// irq_to_desc is not exported to modules; generic_handle_irq does the same lookup.
			old := "handle_simple_irq(irq_to_desc(irqnum));"
			if !bytes.Contains(b, []byte(old)) {
				return "", fmt.Errorf("gpio-sim build: %s no longer has %q: the recipe needs updating", f, old)
			}
			b = bytes.Replace(b, []byte(old), []byte("generic_handle_irq(irqnum);"), 1)
		}
		if err := os.WriteFile(filepath.Join(mod, filepath.Base(f)), b, 0o644); err != nil {
			return "", err
		}
	}
	kbuild := "obj-m := jsn_gpio_sim.o\njsn_gpio_sim-y := gpio-sim.o irq_sim.o\n"
	if err := os.WriteFile(filepath.Join(mod, "Kbuild"), []byte(kbuild), 0o644); err != nil {
		return "", err
	}
	cmd := exec.Command("make", "-C", k.Headers, "M="+mod, "modules")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build gpio-sim: %v\n%s", err, out)
	}
	built := filepath.Join(mod, "jsn_gpio_sim.ko")
	if _, err := exec.LookPath("strip"); err == nil {
		_ = exec.Command("strip", "--strip-debug", built).Run()
	}
	b, err := os.ReadFile(built)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(ko+".tmp", b, 0o644); err != nil {
		return "", err
	}
	return ko, os.Rename(ko+".tmp", ko)
}
