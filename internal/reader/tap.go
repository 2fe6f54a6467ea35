package reader

import (
	"sync"
	"sync/atomic"
)

// Tap hands a running reader's events to live watchers (`scanagent monitor
// --live` through the admin socket), so a gate can be diagnosed without
// stopping the agent. The events are the ones Monitor shows, with the same
// masking: possible ID numbers hidden in the raw frame, the ID number shown
// as 330***********123X. A Tap with no watcher costs one atomic load per
// frame; a watcher that falls behind loses events (counted in Dropped),
// never slows the reader down. One Tap serves every reader of the agent.
type Tap struct {
	// mu guards subs and each watcher's dropped count. publish holds it
	// while it offers an event (never blocking: a full channel drops), and
	// cancel holds it while it closes a channel, so no send meets a closed
	// channel. The readers' goroutines publish; HTTP handlers subscribe.
	mu    sync.Mutex
	subs  map[*tapSub]struct{}
	count atomic.Int32 // len(subs), read without mu on every frame
}

// TapEvent is one event of one reader, as a watcher receives it.
type TapEvent struct {
	Reader string `json:"reader"`
	Event
	// Dropped is how many events this watcher missed just before this one
	// because it read too slowly.
	Dropped int `json:"dropped,omitempty"`
}

type tapSub struct {
	reader  string // "" = every reader
	ch      chan TapEvent
	dropped int // guarded by Tap.mu
}

// NewTap returns a Tap with no watcher.
func NewTap() *Tap { return &Tap{subs: map[*tapSub]struct{}{}} }

// Subscribe starts watching reader ("" = all readers). The events arrive on
// the channel, which holds up to buf of them; cancel stops the watch and
// closes the channel.
func (t *Tap) Subscribe(reader string, buf int) (events <-chan TapEvent, cancel func()) {
	if buf < 1 {
		buf = 1
	}
	s := &tapSub{reader: reader, ch: make(chan TapEvent, buf)}
	t.mu.Lock()
	t.subs[s] = struct{}{}
	t.count.Store(int32(len(t.subs)))
	t.mu.Unlock()
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			t.mu.Lock()
			delete(t.subs, s)
			t.count.Store(int32(len(t.subs)))
			close(s.ch)
			t.mu.Unlock()
		})
	}
}

// active reports whether anyone watches; safe on a nil Tap.
func (t *Tap) active() bool { return t != nil && t.count.Load() > 0 }

// publish offers ev to every watcher of its reader without waiting.
func (t *Tap) publish(reader string, ev Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for s := range t.subs {
		if s.reader != "" && s.reader != reader {
			continue
		}
		select {
		case s.ch <- TapEvent{Reader: reader, Event: ev, Dropped: s.dropped}:
			s.dropped = 0
		default:
			s.dropped++
		}
	}
}
