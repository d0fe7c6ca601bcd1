// Command jsnguest is the guest side of package kerneltest: it serves an exporter config (the
// real exporter and drivers, as `jsn exporter run` does) on a NATS URL under a fixed lease, so
// that a test on the host reaches kernel devices of the guest through the bus. It runs until
// SIGTERM or SIGINT.
//
//	jsnguest -c exporter.yaml -url nats://10.0.2.2:4222 -lease test-lease
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"jsn.dev/jsn/bus"
	_ "jsn.dev/jsn/drivers/all"
	"jsn.dev/jsn/exporter"
)

func main() {
	config := flag.String("c", "", "exporter config file")
	url := flag.String("url", "", "NATS URL of the bus")
	lease := flag.String("lease", "", "lease id to serve")
	flag.Parse()
	if err := run(*config, *url, *lease); err != nil {
		fmt.Fprintln(os.Stderr, "jsnguest:", err)
		os.Exit(1)
	}
}

func run(config, url, lease string) error {
	if config == "" || url == "" || lease == "" {
		return fmt.Errorf("-c, -url and -lease are required")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cfg, err := exporter.LoadConfig(config)
	if err != nil {
		return err
	}
	ex, err := exporter.New(cfg, log)
	if err != nil {
		return err
	}
	defer ex.Close()
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := ex.Open(octx); err != nil {
		return err
	}
	conn, err := bus.Connect(octx, url, "exporter-"+ex.Name())
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := ex.Start(octx, conn); err != nil {
		return err
	}
	if err := ex.BeginLease(octx, lease); err != nil {
		log.Warn("reset at lease start", "err", err)
	}
	fmt.Println("jsnguest: serving", ex.Name())
	<-ctx.Done()
	ex.Stop(context.Background())
	return nil
}
