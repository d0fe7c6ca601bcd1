// Package qemu owns the qemu.QEMU driver: a whole virtual board made of a QEMU guest. It starts and
// stops the qemu-system process (QMP over a Unix socket for control) and builds the board's
// children from the other driver packages so that every CLI verb works on them: `power`
// (jsn.power.v1), `console` (the guest's serial port as a serial.Port on a Unix socket,
// jsn.serial.v1), `storage` (the disk image as a storage.File, jsn.storage.v1), one network.TCP
// per `hostfwd` entry (jsn.network.v1), and `video` (jsn.video.v1 of package video: PNG snapshots
// of the screen through QMP screendump). Each child serves its capability package's method table,
// so the typed clients and verbs of those packages work on it unchanged.
//
// The QEMU process never outlives the driver: Reset and Close power the board off, and on Linux
// the process gets SIGKILL if the exporter dies. Nothing here reaches the bus or NATS
// (internal/layering checks), writes to stdout, or logs through the global logger.
package qemu
