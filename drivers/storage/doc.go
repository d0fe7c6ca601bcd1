// Package storage owns the jsn.storage.v1 interface — flashing disk images onto a file or a block
// device on the exporter, reading them back, and an image cache — and the jsn.storagemux.v1
// interface of SD-card muxes, which switch one card between the exporter (host) and the device
// under test (DUT) and offer every storage method on the host side.
//
// Drivers: storage.File (a disk image file or block device), storage.MockMux (a file-backed mux
// with no hardware, Jumpstarter's MockStorageMux) and storage.SDWire (an SDWire switched through
// sd-mux-ctrl). The package also holds the typed client (Client) and the `jsn storage` verbs.
//
// Uploads stream through fixed buffers whatever the image size: the exporter sniffs the first
// bytes, decompresses gzip, xz, zstd and bzip2 by magic number, verifies the SHA-256 of the
// uploaded (compressed) bytes, writes, fsyncs, and only then reports success. Regular files are
// written to a temporary file next to the target and renamed into place, so a failed flash leaves
// them unchanged; a driver's Open removes such temporaries that no running flash holds (an
// exporter stopped mid-flash left them). A block device is written in place: while a flash runs,
// a journal in the image cache directory records it, so that state() — after an exporter restart
// too — and the next flash say when a flash did not finish and the content is incomplete. Nothing here reaches the bus or NATS (drivers speak package wire, the client and
// verbs client/remote; internal/layering checks), writes to stdout or logs through the global
// logger.
package storage
