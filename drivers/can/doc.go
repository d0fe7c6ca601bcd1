// Package can owns the jsn.can.v1 interface (raw CAN and CAN FD frames on a bus) and the
// jsn.isotp.v1 interface (ISO-TP messages), on Linux SocketCAN through golang.org/x/sys/unix
// sockets. It holds the method tables (Methods, IsoTPMethods) built on the Go interfaces
// drivers implement (Device, IsoTP), the typed clients, the verbs `jsn can send|dump` (can-utils'
// syntax: cansend frames, candump output and filters) and `jsn isotp send|recv`, and the
// drivers:
//
//   - can.Raw (Jumpstarter's jumpstarter_driver_can.Can): SocketCAN raw sockets, one per
//     listener so each dump has its filters in the kernel; or interface "virtual", an
//     in-process bus per channel like python-can's.
//   - can.IsoTP (Jumpstarter's IsoTpSocket, and IsoTpPython whose keys map onto the same kernel
//     socket): the kernel's can-isotp sockets, python-can-isotp's address and params keys.
//
// An interface that is absent or down makes its driver unavailable (describe says why), not
// the exporter fail. The tests run against a real kernel: vcan, can-raw and can-isotp in a
// QEMU guest (internal/kerneltest), frames checked against can-utils' candump and cansend.
//
// Nothing here reaches the bus or NATS (internal/layering checks), writes to stdout, or logs
// through the global logger.
package can
