// Command kbench runs in the kernel benchmark's QEMU guest, beside the exporter, and measures
// there what the benchmark measures through jsn from the host, directly: the same driver code
// (gpio.Output's Set, can.Raw's Send and a Listen socket) called in-process, without the bus.
// It also answers NATS requests on kbench.echo, the plain request-reply baseline between host
// and guest. It prints one JSON object with the figures and exits; with -echo it serves
// kbench.echo until killed.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/nats-io/nats.go"

	"jsn.dev/jsn/drivers/can"
	"jsn.dev/jsn/drivers/drivertest"
	"jsn.dev/jsn/drivers/gpio"
)

func main() {
	chip := flag.String("gpio-chip", "jsn-sim", "GPIO chip")
	line := flag.String("gpio-line", "1", "GPIO output line")
	iface := flag.String("can", "vcan1", "CAN interface")
	n := flag.Int("n", 1000, "iterations")
	echo := flag.String("echo", "", "serve kbench.echo on this NATS URL until killed")
	flag.Parse()
	if err := run(*chip, *line, *iface, *n, *echo); err != nil {
		fmt.Fprintln(os.Stderr, "kbench:", err)
		os.Exit(1)
	}
}

func run(chip, line, iface string, n int, echo string) error {
	ctx := context.Background()
	if echo != "" {
		nc, err := nats.Connect(echo)
		if err != nil {
			return err
		}
		if _, err := nc.Subscribe("kbench.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
			return err
		}
		if err := nc.Flush(); err != nil {
			return err
		}
		fmt.Println("kbench: echo ready")
		select {}
	}
	o := gpio.NewOutput(drivertest.Env("out")).(*gpio.Output)
	o.Device, o.Line.Line = chip, line
	if err := o.Validate(); err != nil {
		return err
	}
	if err := o.Open(ctx); err != nil {
		return err
	}
	defer o.Close()
	var gpioTimes []time.Duration
	for i := 0; i < n; i++ {
		t := time.Now()
		if err := o.Set(ctx, i%2 == 0); err != nil {
			return err
		}
		gpioTimes = append(gpioTimes, time.Since(t))
	}

	r := can.NewRaw(drivertest.Env("bus")).(*can.Raw)
	r.Chan = iface
	if err := r.Validate(); err != nil {
		return err
	}
	if err := r.Open(ctx); err != nil {
		return err
	}
	defer r.Close()
	rx, err := r.Listen(nil)
	if err != nil {
		return err
	}
	defer rx.Close()
	var canTimes []time.Duration
	for i := 0; i < n; i++ {
		f := can.Frame{ID: 0x123, Data: []byte{byte(i), byte(i >> 8)}}
		t := time.Now()
		if err := r.Send(ctx, f); err != nil {
			return err
		}
		for {
			got, err := rx.Recv(ctx)
			if err != nil {
				return err
			}
			if got.ID == f.ID && len(got.Data) == 2 && got.Data[0] == f.Data[0] && got.Data[1] == f.Data[1] {
				break
			}
		}
		canTimes = append(canTimes, time.Since(t))
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]float64{
		"gpio_p50": pct(gpioTimes, 50), "gpio_p99": pct(gpioTimes, 99),
		"can_p50": pct(canTimes, 50), "can_p99": pct(canTimes, 99),
	})
}

// pct returns the p-th percentile in microseconds.
func pct(ds []time.Duration, p float64) float64 {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return float64(s[int(float64(len(s)-1)*p/100)]) / float64(time.Microsecond)
}
