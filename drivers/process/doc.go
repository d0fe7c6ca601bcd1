// Package process is the out-of-process driver: an export node of type process runs a program
// of its own, in any language, and serves the methods that program declares.
//
//	relay:
//	  type: process
//	  config:
//	    command: [python3, -m, jsn_driver, relay.py]
//	    options: {port: /dev/ttyACM0}   # the driver's own settings, sent in INIT
//	    restart: on-failure              # never | on-failure | always, with backoff
//	    call_timeout: 30s
//
// The exporter starts the program with one end of a private socket pair as file descriptor 3
// and speaks the protocol of docs/external-drivers.md on it: length-prefixed frames with
// msgpack bodies (INIT/HELLO to declare methods, CALL/RESULT/ERROR, STREAM/ITEM/DATA/CREDIT/FIN
// for streams, OPEN/RESET/CLOSE at the same points of the lease life cycle as Go drivers).
// Stdout and stderr are free for logging: every line goes to the exporter log with the node's
// path. The program never sees the bus or its credentials: JSN_* and NATS_* variables are
// removed from its environment.
//
// A crash, a hang past call_timeout, garbage on the socket or a method that never answers gives
// the caller UNAVAILABLE, DEADLINE_EXCEEDED or INTERNAL naming the driver and what happened; the
// process is restarted as restart says while the node reports why it is unavailable, and the
// lease goes on. The Python SDK (python/jsn_driver.py) is embedded and put on the program's
// PYTHONPATH. Like every driver package, this one links no NATS.
package process
