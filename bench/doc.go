// Command bench is jsn's benchmark suite. Every jsn figure is measured next to its baselines in
// the same run (raw NATS on the same server, direct loopback TCP, process start of a trivial Go
// binary) and printed as a ratio, so the numbers mean the same on any machine.
//
//	go run ./bench            # the full set (1 GiB streams, 20,000 calls)
//	go run ./bench -quick     # a fast pass, as CI runs it (timings printed, never asserted)
//
// Results are printed as a table and written to bench/results.json.
package main
