package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jsn.dev/jsn/bus/wire"
)

// LogConfig configures an append-only JetStream stream (a log: the audit log is one). Writers
// append to it with plain publishes on its subjects (Conn.Publish: no round trip, nothing waits),
// so only what NATS permissions let publish there ends up in it.
type LogConfig struct {
	Name     string
	Subjects []string
	MaxAge   time.Duration // oldest entry kept; 0 = no age limit
	MaxBytes int64         // most bytes kept (oldest dropped first); 0 = no size limit
	Replicas int           // stream replicas (default 1)
}

// LogEntry is one message of a log.
type LogEntry struct {
	Subject string
	Data    []byte
	Seq     uint64
	Time    time.Time
}

// EnsureLog creates the log stream, or updates its limits if it exists.
func (c *Conn) EnsureLog(ctx context.Context, cfg LogConfig) error {
	js, err := jetstream.New(c.nc)
	if err != nil {
		return fmt.Errorf("log %s: %w", cfg.Name, err)
	}
	maxBytes := cfg.MaxBytes
	if maxBytes == 0 {
		maxBytes = -1
	}
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:      cfg.Name,
		Subjects:  cfg.Subjects,
		Retention: jetstream.LimitsPolicy,
		Discard:   jetstream.DiscardOld,
		MaxAge:    cfg.MaxAge,
		MaxBytes:  maxBytes,
		Replicas:  cfg.Replicas,
		Storage:   jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("log %s: %w", cfg.Name, err)
	}
	return nil
}

// ReadLog calls fn, in order, for the entries of log stream name on any of subjects (all when
// empty) stored at or after since (or the first one when zero) that were there when it started;
// it stops when fn returns false.
func (c *Conn) ReadLog(ctx context.Context, name string, subjects []string, since time.Time, fn func(LogEntry) bool) error {
	js, err := jetstream.New(c.nc)
	if err != nil {
		return fmt.Errorf("log %s: %w", name, err)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverAllPolicy}
	if !since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := js.OrderedConsumer(ctx, name, cfg)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return wire.Errorf(wire.Unavailable, "log %s does not exist (yet): nothing was written to it", name)
		}
		return fmt.Errorf("log %s: %w", name, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("log %s: %w", name, err)
	}
	left := info.NumPending
	for left > 0 {
		batch, err := cons.Fetch(int(min(left, 256)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return fmt.Errorf("log %s: %w", name, err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("log %s: %w", name, err)
			}
			if !fn(LogEntry{Subject: m.Subject(), Data: m.Data(), Seq: md.Sequence.Stream, Time: md.Timestamp}) {
				return nil
			}
			left = md.NumPending
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("log %s: %w", name, err)
		}
		if got == 0 {
			return nil // entries dropped by the limits meanwhile
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}
