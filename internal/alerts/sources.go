package alerts

import (
	"fmt"
	"time"
)

// The sources of the conditions, each built from a function that reads one
// fact of the running agent. The agent wires them (cmd/scanagent/agent.go);
// a source whose fact cannot be read reports nothing, which keeps the
// condition's state.

// ReaderSource: reader's port closed for at least after. down reports
// whether the port is closed and since when.
func ReaderSource(reader string, down func() (since time.Time, down bool), after time.Duration) Source {
	return func(now time.Time) []Condition {
		since, d := down()
		return []Condition{{Kind: ReaderDown, Reader: reader, Key: Key(ReaderDown, reader),
			Active: d && now.Sub(since) >= after, Since: since,
			Detail: "串口已断开",
			Fix:    "检查读卡器的 USB/串口线与电源是否插好；端口名见配置 [[reader]] port，scanagent ports 可列出本机串口。"}}
	}
}

// BacklogSource: the oldest pending scan older than age. oldest returns
// the oldest pending scan's time, nil when none is pending.
func BacklogSource(oldest func() (*time.Time, error), age time.Duration) Source {
	return func(now time.Time) []Condition {
		t, err := oldest()
		if err != nil {
			return nil
		}
		c := Condition{Kind: Backlog, Key: string(Backlog),
			Fix: "检查本机网络与平台地址（[platform] base_url），scanagent doctor 逐项检查；平台恢复后会自动补传。"}
		if t != nil && now.Sub(*t) >= age {
			c.Active, c.Since = true, *t
			c.Detail = "最早一条扫描等待上传已超过 " + human(age)
		}
		return []Condition{c}
	}
}

// DeadSource: records the platform refused for good are kept. count
// returns how many.
func DeadSource(count func() (uint64, error)) Source {
	return func(time.Time) []Condition {
		n, err := count()
		if err != nil {
			return nil
		}
		return []Condition{{Kind: Dead, Key: string(Dead), Active: n > 0, Detail: fmt.Sprintf("%d 条记录被平台拒收", n),
			Fix: "用 scanagent queue list --dead 查看原因，修正配置后 scanagent queue retry --all-dead 重新上传。"}}
	}
}

// CredentialsSource: the token endpoint refuses client_id/client_secret.
func CredentialsSource(refused func() (since time.Time, refused bool)) Source {
	return func(time.Time) []Condition {
		since, r := refused()
		return []Condition{{Kind: Credentials, Key: string(Credentials), Active: r, Since: since,
			Detail: "获取访问令牌被拒（401）",
			Fix:    "核对 [platform] client_id 与 client_secret（或 client_secret_file / SCANAGENT_CLIENT_SECRET）；扫描记录在本地保存，凭据修正后自动上传。"}}
	}
}

// HoldSource: uploads held on a systemic refusal. held reports whether,
// since when, and what is at fault (the fields and the key to check).
func HoldSource(held func() (since time.Time, held bool, fault string)) Source {
	return func(time.Time) []Condition {
		since, h, fault := held()
		return []Condition{{Kind: Hold, Key: string(Hold), Active: h, Since: since, Detail: fault,
			Fix: "平台连续拒收同样的字段，多半是配置有误：按提示核对配置（scanagent doctor）；记录仍在本地，修正后自动恢复上传。"}}
	}
}

// ClockSkewSource: the platform's clock differs from ours by more than
// limit. skew returns the last measured difference and whether one was
// measured.
func ClockSkewSource(skew func() (d time.Duration, known bool), limit time.Duration) Source {
	return func(time.Time) []Condition {
		d, ok := skew()
		if !ok {
			return nil
		}
		return []Condition{{Kind: ClockSkew, Key: string(ClockSkew), Active: d > limit || d < -limit,
			Detail: "与平台相差 " + d.Round(time.Second).String(),
			Fix:    "检查本机时间与 NTP 时间同步（timedatectl / w32tm）。"}}
	}
}

// QueueFullSource: pending at 90% of maxPending or more.
func QueueFullSource(pending func() (uint64, error), maxPending int) Source {
	return func(time.Time) []Condition {
		n, err := pending()
		if err != nil || maxPending <= 0 {
			return nil
		}
		return []Condition{{Kind: QueueFull, Key: string(QueueFull), Active: n*10 >= uint64(maxPending)*9,
			Detail: fmt.Sprintf("待上传 %d 条，上限 %d（[queue] max_pending）", n, maxPending),
			Fix:    "队列满后新扫描将被拒绝：先恢复与平台的连接（scanagent doctor），必要时调大 max_pending。"}}
	}
}

// DiskMin is the free space under which data_dir's disk counts as nearly
// full: less than this many bytes, or less than 5% of the disk.
const DiskMin = 100 << 20

// DiskSource: data_dir's disk nearly full, or the queue's last write
// failed. free returns the free and total bytes of the disk; writeErr the
// queue's last write error ("" when the last write succeeded).
func DiskSource(free func() (free, total uint64, err error), writeErr func() string) Source {
	return func(time.Time) []Condition {
		c := Condition{Kind: DiskFull, Key: string(DiskFull),
			Fix: "清理 data_dir 所在磁盘的空间；空间不足时新扫描无法保存。"}
		if e := writeErr(); e != "" {
			c.Active, c.Detail = true, "队列数据库写入失败："+e
			return []Condition{c}
		}
		f, t, err := free()
		if err != nil {
			return nil
		}
		if f < DiskMin || t > 0 && f*20 < t {
			c.Active = true
		}
		c.Detail = fmt.Sprintf("剩余 %d MB", f>>20)
		return []Condition{c}
	}
}
