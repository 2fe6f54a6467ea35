package alerts

import (
	"fmt"
	"strings"
	"time"

	"scanagent/internal/redact"
)

// Message kinds.
const (
	Start    = "start"
	Reminder = "reminder"
	Cleared  = "cleared"
	TestKind = "test"
)

// kindTitle names a condition in a message.
var kindTitle = map[Kind]string{
	ReaderDown:  "读卡器断开",
	Backlog:     "扫描记录积压未上传",
	Dead:        "有记录被平台拒收",
	Credentials: "平台拒绝客户端凭据",
	Hold:        "上传被暂停（平台系统性拒收）",
	ClockSkew:   "时钟偏差",
	QueueFull:   "本地队列将满",
	DiskFull:    "磁盘空间将满",
}

// stamp formats a time for a message.
const stamp = "2006-01-02 15:04:05"

// render writes the text of one message. terms are the station's readers;
// a reader's condition names its own terminal.
func render(kind string, st state, at time.Time, terms []Terminal, loc *time.Location) string {
	var b strings.Builder
	switch kind {
	case Start:
		b.WriteString("【扫码终端告警】")
	case Reminder:
		b.WriteString("【扫码终端告警·仍未恢复】")
	case Cleared:
		b.WriteString("【扫码终端恢复】")
	}
	b.WriteString(terminalNames(st.Reader, terms))
	b.WriteString("：")
	title := kindTitle[Kind(st.Kind)]
	if title == "" {
		title = st.Kind
	}
	b.WriteString(title)
	if st.Detail != "" {
		b.WriteString("（" + st.Detail + "）")
	}
	since := st.Since.In(loc).Format(stamp)
	switch kind {
	case Cleared:
		fmt.Fprintf(&b, "，自 %s 起，已于 %s 恢复，持续 %s。", since, at.In(loc).Format(stamp), human(at.Sub(st.Since)))
	default:
		fmt.Fprintf(&b, "，自 %s 起，已持续 %s。", since, human(at.Sub(st.Since)))
		if st.Fix != "" {
			b.WriteString("处理：" + st.Fix)
		}
	}
	return redact.IDNumbers(b.String())
}

// terminalNames names the terminal of reader, or every terminal of the
// station when reader is "".
func terminalNames(reader string, terms []Terminal) string {
	var parts []string
	for _, t := range terms {
		if reader != "" && t.Reader != reader {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s（%s，读卡器 %s）", t.TermName, t.TermSn, t.Reader))
	}
	if len(parts) == 0 {
		if reader != "" {
			return "读卡器 " + reader
		}
		return "扫码终端"
	}
	return strings.Join(parts, "、")
}

// human writes a duration in Chinese, to the minute (seconds under one).
func human(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%d 秒", max(0, int(d/time.Second)))
	}
	d = d.Round(time.Minute)
	days, h, m := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour), int(d%time.Hour/time.Minute)
	var b strings.Builder
	if days > 0 {
		fmt.Fprintf(&b, "%d 天", days)
	}
	if h > 0 {
		fmt.Fprintf(&b, "%d 小时", h)
	}
	if m > 0 || b.Len() == 0 {
		fmt.Fprintf(&b, "%d 分钟", m)
	}
	return b.String()
}

// testText is the text of `scanagent alerts test`.
func testText(at time.Time, terms []Terminal, loc *time.Location) string {
	return redact.IDNumbers("【扫码终端测试消息】" + terminalNames("", terms) + "：这是一条测试消息（" +
		at.In(loc).Format(stamp) + "），收到即说明告警通道正常，无需处理。")
}
