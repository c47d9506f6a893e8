/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * sch_dwcs.h - user-space interface of the DWCS qdisc (kind "dwcs").
 *
 * Qdisc options are nested in TCA_OPTIONS as TCA_DWCS_*; class options as
 * TCA_DWCS_CLASS_*. Statistics are the generic ones (bstats, qstats, qlen,
 * backlog) plus the xstats structs below. qsock-core mirrors this file.
 */
#ifndef _UAPI_LINUX_SCH_DWCS_H
#define _UAPI_LINUX_SCH_DWCS_H

#include <linux/types.h>

/* Qdisc options (RTM_NEWQDISC / RTM_GETQDISC). Absent = unchanged/default. */
enum {
	TCA_DWCS_UNSPEC,
	TCA_DWCS_RATE,		/* u64, link rate in bytes/s; 0 = none */
	TCA_DWCS_LIMIT,		/* u32, packets queued at most by the streams
				 * together, and by best effort apart */
	TCA_DWCS_RESOLUTION,	/* u64, ns; rule 1 compares deadline slots */
	TCA_DWCS_PAD,
	__TCA_DWCS_MAX,
};

#define TCA_DWCS_MAX	(__TCA_DWCS_MAX - 1)

/* TCA_DWCS_CLASS_FLAGS */
#define TC_DWCS_CLASS_F_DROPPABLE	(1U << 0) /* lossy: late packets dropped */
#define TC_DWCS_CLASS_F_WORK_CONSERVING	(1U << 1) /* no pacing to one per period */
#define TC_DWCS_CLASS_F_APERIODIC	(1U << 2) /* no period: EDF on own deadlines */
#define TC_DWCS_CLASS_F_MASK		(TC_DWCS_CLASS_F_DROPPABLE | \
					 TC_DWCS_CLASS_F_WORK_CONSERVING | \
					 TC_DWCS_CLASS_F_APERIODIC)

/*
 * Class options (RTM_NEWTCLASS). A new class needs TCA_DWCS_CLASS_PERIOD
 * (non-zero) or the APERIODIC flag; a change keeps what it does not name.
 * oln/old: 0/0 is pure EDF; old == 0 < oln and oln > old are refused.
 */
enum {
	TCA_DWCS_CLASS_UNSPEC,
	TCA_DWCS_CLASS_PERIOD,	/* u64, request period T (ipg) in ns */
	TCA_DWCS_CLASS_OLN,	/* u32, misses allowed per window */
	TCA_DWCS_CLASS_OLD,	/* u32, window length in packets */
	TCA_DWCS_CLASS_FLAGS,	/* u32, TC_DWCS_CLASS_F_* */
	TCA_DWCS_CLASS_PAD,
	__TCA_DWCS_CLASS_MAX,
};

#define TCA_DWCS_CLASS_MAX	(__TCA_DWCS_CLASS_MAX - 1)

/* Class xstats (RTM_GETTCLASS, TCA_STATS_APP). */
struct tc_dwcs_xstats {
	__u64	sent_packets;
	__u64	sent_bytes;
	__u64	drops_late;		/* late with x' > 0 */
	__u64	drops_window;		/* late with x' == 0 */
	__u64	drops_frame;		/* rest of a late frame */
	__u64	drops_queue_full;	/* droppable, queue full */
	__u64	refused;		/* non-droppable, queue full: ENOBUFS */
	__u64	deadline_misses;
	__u64	window_violations;
	__u64	queue_delay_sum_ns;	/* over sent packets */
	__u64	queue_delay_max_ns;
	__u64	backlog_packets;
	__u64	backlog_bytes;
	__u32	x;			/* current x' */
	__u32	y;			/* current y' */
	__u32	oln;
	__u32	old;
};

/* Qdisc xstats (RTM_GETQDISC, TCA_STATS_APP): totals over the classes. */
struct tc_dwcs_qdisc_xstats {
	__u32	classes;
	__u32	pad;
	__u64	sent_packets;		/* streams and best effort */
	__u64	sent_bytes;
	__u64	drops_late;
	__u64	drops_window;
	__u64	drops_frame;
	__u64	drops_queue_full;
	__u64	refused;
	__u64	deadline_misses;
	__u64	window_violations;
	__u64	be_sent_packets;	/* best effort alone */
	__u64	be_sent_bytes;
	__u64	be_drops_queue_full;
	__u64	be_refused;
	__u64	be_backlog_packets;
};

/*
 * Per-packet metadata: how a sender tells the qdisc a packet's deadline,
 * drop flag and frame start.
 *
 * Decision: everything travels in the SCM_TXTIME value. The socket enables
 * SO_TXTIME with clockid CLOCK_MONOTONIC (no privilege needed since 5.8) and
 * passes a u64 with each sendmsg() as a SCM_TXTIME cmsg; IPv4 and IPv6 UDP
 * copy it into skb->tstamp (__ip_make_skb, __ip6_make_skb; in 6.12 with
 * tstamp_type SKB_CLOCK_MONOTONIC), where the qdisc reads it at enqueue:
 *
 *   bits 63..3  the deadline, absolute CLOCK_MONOTONIC ns, low 3 bits cleared
 *               (deadlines lose 8 ns of resolution);
 *   bits  2..1  enum tc_dwcs_drop (default / never dropped / droppable);
 *   bit      0  TC_DWCS_TXTIME_FRAME_START.
 *
 * A value below 8 (TC_DWCS_TXTIME_NO_DEADLINE) carries flags only: the
 * packet takes the stream's periodic deadline. Reasons: it needs no
 * privilege on 6.1 (SO_MARK and SO_PRIORITY values would), no second cmsg
 * and no kernel change; it reaches the qdisc unchanged on the local output
 * path (fragments and GSO segments copy tstamp); and it leaves DSCP, the
 * mark and the priority (the classification, see below) to their usual
 * users. The qdisc honours it only from local UDP sockets that enabled
 * SO_TXTIME on CLOCK_MONOTONIC (TCP's departure-time stamps are not
 * deadlines), and clears skb->tstamp before the packet goes on, so that no
 * device or later qdisc acts on it as a launch time.
 *
 * Classification: SO_PRIORITY = the class handle (major:minor of this
 * qdisc); anything else goes to the best-effort FIFO.
 *
 * Refusal: a non-droppable packet offered to a full qdisc is refused with
 * NET_XMIT_DROP. UDP reports that as ENOBUFS only on sockets with IP_RECVERR
 * (IPV6_RECVERR); without it sendmsg() succeeds and the loss shows only in
 * the class's `refused` counter, so qsock sets IP_RECVERR. Droppable
 * packets dropped at enqueue return NET_XMIT_CN: the sender is not told.
 */
enum tc_dwcs_drop {
	TC_DWCS_DROP_DEFAULT = 0,	/* the class's flag */
	TC_DWCS_DROP_NO = 1,		/* never dropped: late or refused */
	TC_DWCS_DROP_YES = 2,		/* droppable even in a lossless class */
};

#define TC_DWCS_TXTIME_FRAME_START	0x1ULL
#define TC_DWCS_TXTIME_DROP_SHIFT	1
#define TC_DWCS_TXTIME_DROP_MASK	0x6ULL
#define TC_DWCS_TXTIME_FLAGS_MASK	0x7ULL
#define TC_DWCS_TXTIME_NO_DEADLINE	0x8ULL	/* values below carry no deadline */

#endif /* _UAPI_LINUX_SCH_DWCS_H */
