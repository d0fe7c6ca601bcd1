package storage

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress renders a transfer for the CLI: a progress bar on a terminal, otherwise a plain line
// every plainEvery (and one at the end).
type progress struct {
	w       io.Writer
	verb    string // "flash", "hash", "dump"
	total   int64  // -1 unknown
	bar     *progressbar.ProgressBar
	start   time.Time
	last    time.Time
	lastN   int64
	printed bool
}

// plainEvery is the time between two plain progress lines.
var plainEvery = 2 * time.Second

func newProgress(w io.Writer, tty bool, verb string, total int64) *progress {
	p := &progress{w: w, verb: verb, total: total, start: time.Now()}
	p.last = p.start
	if tty {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(verb),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionUseIECUnits(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetWidth(30),
		)
	}
	return p
}

// set records that n bytes are done.
func (p *progress) set(n int64) {
	if p.bar != nil {
		_ = p.bar.Set64(n)
		return
	}
	if now := time.Now(); now.Sub(p.last) >= plainEvery {
		p.line(n, now)
	}
}

func (p *progress) line(n int64, now time.Time) {
	rate := ""
	if d := now.Sub(p.start).Seconds(); d > 0 {
		rate = fmt.Sprintf("  %.0f MB/s", float64(n)/d/1e6)
	}
	if p.total > 0 {
		fmt.Fprintf(p.w, "%s: %s / %s  %d%%%s\n", p.verb, Bytes(n), Bytes(p.total), n*100/p.total, rate)
	} else {
		fmt.Fprintf(p.w, "%s: %s%s\n", p.verb, Bytes(n), rate)
	}
	p.last, p.lastN, p.printed = now, n, true
}

// done ends the display; n is the final count.
func (p *progress) done(n int64) {
	if p.bar != nil {
		_ = p.bar.Finish()
		return
	}
	if !p.printed || p.lastN != n {
		p.line(n, time.Now())
	}
}

// abort ends the display without a final line.
func (p *progress) abort() {
	if p.bar != nil {
		_ = p.bar.Exit()
		fmt.Fprintln(p.w)
	}
}

// Bytes formats a byte count with binary units: "512 MiB", "1.0 GiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	if v < 10 {
		return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[exp])
	}
	return fmt.Sprintf("%.0f %ciB", v, "KMGTPE"[exp])
}
