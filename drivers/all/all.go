package all

import (
	_ "jsn.dev/jsn/drivers/composite" // composite, Jumpstarter Composite/Proxy
	_ "jsn.dev/jsn/drivers/debug"     // debug.ProbeRS; jsn debug gdb (qemu.GDB implements it), jsn probe
	_ "jsn.dev/jsn/drivers/gpio"      // gpio.Output, Input, PowerSwitch; jsn gpio
	_ "jsn.dev/jsn/drivers/network"   // network.TCP, UDP, Unix; jsn forward, jsn ssh
	_ "jsn.dev/jsn/drivers/opendal"   // opendal.Opendal (fs); jsn opendal
	_ "jsn.dev/jsn/drivers/power"     // power.Mock; jsn power
	_ "jsn.dev/jsn/drivers/process"   // process: out-of-process drivers (any language, Python SDK)
	_ "jsn.dev/jsn/drivers/qemu"      // qemu.QEMU virtual board
	_ "jsn.dev/jsn/drivers/serial"    // serial.Port; jsn serial
	_ "jsn.dev/jsn/drivers/shell"     // shell
	_ "jsn.dev/jsn/drivers/storage"   // storage.File, MockMux, SDWire; jsn storage
	_ "jsn.dev/jsn/drivers/video"     // jsn video (qemu.Video implements it)
	_ "jsn.dev/jsn/drivers/vnc"       // vnc.VNC; jsn vnc (qemu.VNC implements it)
)

// Boot and flash through the bootloader (one import per line, outside the block above so that
// gofmt's alignment never rewrites other lines).
import _ "jsn.dev/jsn/drivers/fileserver" // fileserver.TFTP, HTTP; jsn fileserver
import _ "jsn.dev/jsn/drivers/uboot"      // uboot.Console; jsn uboot
import _ "jsn.dev/jsn/drivers/flasher"    // flasher.UBoot; jsn flasher

// SocketCAN raw frames and ISO-TP.
import _ "jsn.dev/jsn/drivers/can" // can.Raw, can.IsoTP; jsn can, jsn isotp
