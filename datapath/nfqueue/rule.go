package nfqueue

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
)

// RuleConfig says which packets the agent's table queues.
type RuleConfig struct {
	// Table is the name of the agent's own table (one per family, ip and
	// ip6); it is deleted and recreated, never shared.
	Table string
	// Mark is the bit(s) that select a packet: mark & Mark == Mark.
	Mark uint32
	// Num is the queue.
	Num uint16
	// NetNS is a network namespace file descriptor; 0 is the caller's.
	NetNS int
}

// nfqFlagBypass is NFQ_FLAG_BYPASS of xt_NFQ_info_v3: with no process bound
// to the queue the kernel accepts the packet instead of dropping it, so a
// rule left behind by a killed agent holds nothing.
const nfqFlagBypass = 0x01

// InstallRule (re)creates the agent's tables with one prerouting chain
// each, at mangle priority:
//
//	meta mark & Mark == Mark queue num Num bypass
//
// Prerouting sees every packet that enters the host: local delivery (host
// servers, lo) and forwarding to containers alike. The queue statement is
// the xtables NFQUEUE target (revision 3) through nft_compat, because this
// kernel family has NFQUEUE as an xtables target whether or not
// nft_queue is built.
//
// google/nftables cannot set a table's owner flag (which would make the
// kernel delete the table with the agent's socket), so a table left by a
// killed agent stays until the next start deletes it; the bypass flag and
// the marks, which vanish with the agent's tcx links, make it inert.
func InstallRule(cfg RuleConfig) error {
	if cfg.Mark == 0 {
		return errors.New("nfqueue rule: mark must not be 0")
	}
	c, err := conn(cfg.NetNS)
	if err != nil {
		return err
	}
	deleteTables(c, cfg.Table)
	info := make(xt.Unknown, 8) // queuenum, queues_total, flags, pad (host order)
	binary.NativeEndian.PutUint16(info[0:], cfg.Num)
	binary.NativeEndian.PutUint16(info[2:], 1)
	binary.NativeEndian.PutUint16(info[4:], nfqFlagBypass)
	mark := binaryutil.NativeEndian.PutUint32(cfg.Mark)
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		t := c.AddTable(&nftables.Table{Name: cfg.Table, Family: fam})
		ch := c.AddChain(&nftables.Chain{
			Name: "prerouting", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityMangle,
		})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mark, Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: mark},
			&expr.Target{Name: "NFQUEUE", Rev: 3, Info: &info},
		}})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("install nftables queue rule: %w", err)
	}
	return nil
}

// RemoveRule deletes the agent's tables (missing ones are fine).
func RemoveRule(table string, netns int) error {
	c, err := conn(netns)
	if err != nil {
		return err
	}
	deleteTables(c, table)
	return nil
}

// TableExists reports whether the agent's ip table is present.
func TableExists(table string, netns int) (bool, error) {
	c, err := conn(netns)
	if err != nil {
		return false, err
	}
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return false, err
	}
	for _, t := range ts {
		if t.Name == table {
			return true, nil
		}
	}
	return false, nil
}

func conn(netns int) (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	if netns != 0 {
		opts = append(opts, nftables.WithNetNSFd(netns))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	return c, nil
}

// deleteTables removes the tables one at a time: a batch fails whole when
// one of them is missing.
func deleteTables(c *nftables.Conn, name string) {
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		if t, err := c.ListTableOfFamily(name, fam); err == nil && t != nil {
			c.DelTable(t)
			_ = c.Flush()
		}
	}
}
