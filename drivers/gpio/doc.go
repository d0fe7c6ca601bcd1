// Package gpio owns the jsn.gpio.v1 interface: one GPIO line of the Linux GPIO character device
// (uAPI v2, /dev/gpiochipN), driven through golang.org/x/sys/unix ioctls. It holds the method
// table (Methods) built on the Go interfaces line drivers implement (Device, and Setter for
// outputs, Watcher for inputs with edge events), the typed client (Client), the `jsn gpio
// get|set|pulse|watch` verbs, and the drivers:
//
//   - gpio.Output (Jumpstarter's jumpstarter_driver_gpiod.driver.DigitalOutput): get, set, on,
//     off, pulse; reset drives the initial value.
//   - gpio.Input (DigitalInput): get, watch (a server stream of edges), wait_for_edge,
//     wait_for_active, wait_for_inactive.
//   - gpio.PowerSwitch (PowerSwitch): a jsn.power.v1 driver (package power's Methods) whose on
//     is the line active.
//
// Values are logical: active_low is applied by the kernel, so "active" is what the config
// means by on. A line whose chip is absent at Open makes its driver unavailable (describe says
// why) and is requested again on the next call.
//
// The tests run against real kernel lines: a QEMU guest with Debian's kernel and the kernel's
// gpio-sim module (internal/kerneltest).
//
// Nothing here reaches the bus or NATS (the method table speaks package wire, the client and
// verbs client/remote; internal/layering checks), writes to stdout, or logs through the
// global logger.
package gpio
