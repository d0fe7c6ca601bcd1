// Package kerneltest boots a QEMU guest (TCG) with Debian's generic kernel so that tests can use
// real kernel devices that this machine's own kernel cannot give them: GPIO lines of the
// kernel's gpio-sim module and SocketCAN interfaces (vcan, can-raw, can-isotp).
//
// # What the guest is
//
//   - the kernel: /boot/vmlinuz-R of Debian's linux-image-amd64 (not the cloud flavour, which
//     lacks CAN and GPIO), with its modules from /lib/modules/R; the newest release R that has
//     the kernel, its modules and (for GPIO) its headers;
//   - an initramfs built here: busybox-static, the modules the options need with their
//     dependencies (modules.dep), a static jsnguest (package jsnguest, built with
//     CGO_ENABLED=0: the real exporter and drivers serving an exporter config) and any file a
//     test adds;
//   - gpio-sim: Debian's kernel is built without it (CONFIG_GPIO_SIM is not set), so Boot builds
//     it out of tree once per kernel release: drivers/gpio/gpio-sim.c and kernel/irq/irq_sim.c
//     taken from Debian's linux-source tarball, linked into one module jsn_gpio_sim.ko against
//     linux-headers-R (irq_sim's one use of the unexported irq_to_desc becomes
//     generic_handle_irq). The module is cached in $XDG_CACHE_HOME/jsn/kerneltest/R (or
//     ~/.cache/…), under a file lock; building it takes ~30 s (mostly unpacking the tarball).
//     The guest makes one simulated chip labelled "jsn-sim" with SimLines lines named
//     sim0…simN, through configfs.
//   - CAN: vcan0 and vcan1, up.
//
// The guest reaches a NATS server that Boot starts on the host (127.0.0.1, any port) through
// QEMU user networking, at 10.0.2.2. Guest.Export starts jsnguest with an exporter config and
// a lease and returns a client of that exporter, so tests call the drivers the way a lab does:
// host client → bus → exporter in the guest → kernel device. Guest.Run runs a shell command in
// the guest over its serial console (to poke gpio-sim's sysfs pulls, or run cansend) and returns
// its output.
//
// One boot serves a whole test package: call Boot from TestMain or through a sync.Once, and
// Close at the end. Booting takes ~10–30 s under TCG on a 2-core machine.
//
// Boot returns ErrSkip (wrapped, with the reason) when something the guest needs is missing:
// qemu-system-x86 (Debian package qemu-system-x86), the kernel (linux-image-amd64), busybox
// (busybox-static), and for GPIO the headers, sources and compiler (linux-headers-amd64,
// linux-source, make, gcc, xz-utils). .ci/run installs them.
package kerneltest
