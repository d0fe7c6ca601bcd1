// Package flasher owns the jsn.flasher.v1 interface: writing an image to a board's storage
// through its bootloader. Its driver, flasher.UBoot (Jumpstarter's BaseFlasher class names load
// too), puts the image on a TFTP or HTTP file server child (made by the flasher itself, as
// Jumpstarter does, when the config gives none), interrupts U-Boot on the board's
// console, has U-Boot load the image into RAM (tftpboot or wget), checks it (crc32) and writes it
// to the target device (mmc, usb, virtio, scsi, sata write), reporting progress as a server
// stream and naming the U-Boot command that failed. It holds the method table (Methods), the
// driver, the typed client (Client) and the `jsn flasher` verbs.
//
// Nothing here reaches the bus or NATS (internal/layering checks), writes to stdout, or logs
// through the global logger.
package flasher
