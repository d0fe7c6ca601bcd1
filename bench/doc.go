// Command bench is jsn's benchmark suite. Every jsn figure is measured next to its baselines in
// the same run and printed as a ratio, so the numbers mean the same on any machine: raw nats.go
// request/reply and pub/sub on the same server, gRPC unary echo and a bidirectional-stream tunnel
// over loopback TCP, direct loopback TCP, a direct pty round trip, local cp and zstd -d to a file,
// a JetStream KV create, and the start of a hello-world Go binary and of one linking only nats.go
// (`-run start`: `jsn version` and `jsn call power.on` as whole processes). Memory figures
// (exporter and controller RSS) come from separate processes.
//
//	go run .                 # the full set (1 GiB streams and flashes, 20,000 calls)
//	go run . -quick          # a fast pass, as CI runs it (timings printed, never asserted)
//	go run . -run stream     # only benchmarks whose name contains "stream"
//	go run . -cpuprofile cpu.prof -run flash
//	go run . -run stream -stream-paths jsn -stream-mib 256   # A/B runs of one path
//	go run . -run flash -flash-mib 512 -transport tcp        # one transport, a smaller image
//
// Call, byte stream and flash run over both transports: local (the client on the session's Unix
// socket, the exporter in process) and distributed mode (a NATS server on loopback TCP with the
// exporter and the client connected over TCP), each with its own raw-NATS baseline.
//
// Results are printed as a table and written to results.json; docs/performance.md records them.
package main
