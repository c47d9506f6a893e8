/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * paper_api.c - the QSockets paper's sections 3.1 and 3.2, written as the
 * paper writes them, against the real libqsock.so; then every error path.
 *
 * usage: paper_api DEV SCHEDULER [RECEIVER_ADDRESS]
 *   e.g. paper_api lo user 127.0.0.1        (no privilege)
 *        paper_api lo htb 127.0.0.1         (root, in a network namespace)
 *
 * The traffic goes to a UDP socket this program opens itself, so every check
 * of what arrived is exact. Prints "N passed, M failed"; exits 1 on any failure.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/time.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qsock.h"

static int passed, failed;

static void check(int ok, int line, const char *format, ...)
{
	va_list args;

	if (ok) {
		passed++;
		return;
	}
	failed++;
	fprintf(stderr, "FAIL paper_api.c:%d: ", line);
	va_start(args, format);
	vfprintf(stderr, format, args);
	va_end(args);
	fputc('\n', stderr);
}

#define CHECK(cond, ...) check(!!(cond), __LINE__, __VA_ARGS__)

/* A call that must fail with `want` and a message containing `needle`. */
static void check_failure(int line, const char *what, long rc, int got, int want,
			  const char *needle)
{
	const char *message = qsock_last_error();

	check(rc == -1, line, "%s returned %ld, want -1", what, rc);
	check(got == want, line, "%s: errno %d (%s), want %d (%s); message: %s", what,
	      got, strerror(got), want, strerror(want), message ? message : "(null)");
	check(message && *message && strstr(message, needle), line,
	      "%s: message \"%s\" does not say \"%s\"", what, message ? message : "(null)",
	      needle);
}

#define EXPECT_FAIL(call, want, needle)                                        \
	do {                                                                   \
		long rc_;                                                      \
		int errno_;                                                    \
		errno = 0;                                                     \
		rc_ = (long)(call);                                            \
		errno_ = errno;                                                \
		check_failure(__LINE__, #call, rc_, errno_, want, needle);     \
	} while (0)

static const char *dev, *sched;
static struct sockaddr_in receiver;
static int rx = -1;

static int open_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *entry;
	int count = 0;

	if (!dir)
		return -1;
	while ((entry = readdir(dir)))
		if (entry->d_name[0] != '.')
			count++;
	closedir(dir);
	return count;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int is_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

/* Receives until `want` datagrams arrived or 3 s pass without one. */
static int receive(int want, long *bytes)
{
	char buf[2048];
	struct pollfd pfd = { .fd = rx, .events = POLLIN };
	int got = 0;

	*bytes = 0;
	while (got < want && poll(&pfd, 1, 3000) == 1) {
		ssize_t n = recv(rx, buf, sizeof(buf), 0);

		if (n < 0)
			break;
		got++;
		*bytes += n;
	}
	return got;
}

/*
 * Late drops (in or beyond the loss window) @fd's stream counts so far.
 * The paper's streams are droppable with periods of 10 or 20 us: a packet is
 * due that soon after it reaches the scheduler, and a deadline scheduler on a
 * slow or busy machine (dwcs in an emulated test VM, the user scheduler's
 * thread on a loaded host) may dequeue it later and must then drop it as
 * late. A packet that did not arrive is accounted for if this grew by one.
 */
static unsigned long long late_drops(int fd)
{
	struct qinfo info;

	memset(&info, 0, sizeof(info));
	if (qinfo(fd, &info) != 0)
		return 0;
	return info.dropped_late + info.dropped_window;
}

/* Nothing more may arrive within 200 ms (no duplicates, nothing stray). */
static void check_quiet(int line)
{
	char buf[2048];
	struct pollfd pfd = { .fd = rx, .events = POLLIN };
	int extra = 0;

	while (poll(&pfd, 1, 200) == 1 && recv(rx, buf, sizeof(buf), 0) >= 0)
		extra++;
	check(extra == 0, line, "%d unexpected datagrams arrived", extra);
}

static void fill(struct qos_params *params, const char *d, const char *n, void *attributes)
{
	memset(params, 0, sizeof(*params));
	strncpy(params->dev, d, IFNAMSIZ - 1);
	strncpy(params->name, n, IFNAMSIZ - 1);
	params->attributes = attributes;
}

static void open_receiver(const char *address)
{
	socklen_t len = sizeof(receiver);
	int size = 4 << 20;

	rx = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&receiver, 0, sizeof(receiver));
	receiver.sin_family = AF_INET;
	if (inet_pton(AF_INET, address, &receiver.sin_addr) != 1) {
		fprintf(stderr, "paper_api: %s is not an IPv4 address\n", address);
		exit(2);
	}
	if (rx < 0 || bind(rx, (struct sockaddr *)&receiver, sizeof(receiver)) < 0 ||
	    getsockname(rx, (struct sockaddr *)&receiver, &len) < 0) {
		perror("paper_api: receiver socket");
		exit(2);
	}
	setsockopt(rx, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

static int finish(void)
{
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

/*
 * The paper fills names with strncpy(dst, src, IFNAMSIZ), which GCC rightly
 * warns may leave them unterminated. The paper's code is kept as written:
 * qsock refuses an unterminated name with EINVAL (checked below), so the
 * warning is silenced for the paper's excerpts only.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-truncation"
/*
 * Section 3.1.1: qsockinit, as the paper writes it. A kernel scheduler on a
 * device that reports no speed (lo, veth) needs a rate, so the scheduler is
 * first installed with one; the paper's call then finds it installed.
 */
static int paper_init(void)
{
	struct qos_params params;
	struct qsock_init_attr init = { .rate = 10000000000u, .limit = 0, .best_effort_kbit = 0 };
	int err = 0;

	fill(&params, dev, sched, &init);
	err = qsockinit(&params);
	CHECK(err == 0, "qsockinit(dev %s, name %s, rate 10gbit) = %d, errno %s: %s", dev,
	      sched, err, strerror(errno), qsock_last_error());
	if (err != 0)
		return -1;

	strncpy(params.dev, dev, IFNAMSIZ);
	strncpy(params.name, sched, IFNAMSIZ);
	params.attributes = NULL;

	err = qsockinit(&params);
	CHECK(err == 0, "qsockinit(dev %s, name %s) = %d, errno %s: %s", dev, sched, err,
	      strerror(errno), qsock_last_error());
	return err == 0 ? 0 : -1;
}

/*
 * Sections 3.1.2 and 3.2 set a stream's parameters with the same lines, as
 * the paper writes them; only the stream's drop flag differs.
 */
static void paper_stream_params(struct qos_params *params, struct q_dwcs_attr *attrs,
				unsigned int stream_flags)
{
	/*set device name*/
	strncpy(params->dev, dev, IFNAMSIZ);
	/*set scheduler name*/
	strncpy(params->name, sched, IFNAMSIZ);
	/*set scheduling attributes*/
	attrs->oln = 0;
	attrs->old = 10;
	attrs->ipg = 10;
	attrs->stream_flags = stream_flags;
	params->attributes = attrs;
}

#pragma GCC diagnostic pop

static void init_errors(void)
{
	struct qos_params params;

	fill(&params, dev, "cbq", NULL);
	EXPECT_FAIL(qsockinit(&params), EOPNOTSUPP, "dwcs, htb, user or auto");
	fill(&params, "nosuchdev0", sched, NULL);
	EXPECT_FAIL(qsockinit(&params), ENODEV, "no network device");
	fill(&params, dev, sched, NULL);
	memset(params.dev, 'x', IFNAMSIZ);
	EXPECT_FAIL(qsockinit(&params), EINVAL, "NUL-terminated");
	fill(&params, dev, sched, NULL);
	memset(params.name, 'y', IFNAMSIZ);
	EXPECT_FAIL(qsockinit(&params), EINVAL, "NUL-terminated");
	EXPECT_FAIL(qsockinit(NULL), EFAULT, "NULL");
}

/*
 * A cap on best effort, then lifted by asking for the whole rate: htb holds
 * the device's traffic of no stream apart from the streams; the others have
 * no best effort of their own to cap, and say which scheduler does. Without
 * privilege a kernel scheduler is qsockd's, and the call succeeds without
 * applying the cap (only qsockd's administrator sets it; the library says
 * so).
 */
static void best_effort_cap(void)
{
	struct qos_params params;
	struct qsock_init_attr cap = { .rate = 10000000000u, .best_effort_kbit = 2000 };
	struct qsock_init_attr lift = { .rate = 10000000000u, .best_effort_kbit = 10000000 };
	int through_qsockd = geteuid() != 0 && strcmp(sched, "user") != 0;
	int err;

	fill(&params, dev, sched, &cap);
	if (strcmp(sched, "htb") != 0 && !through_qsockd) {
		EXPECT_FAIL(qsockinit(&params), EOPNOTSUPP, "use scheduler htb");
		return;
	}
	err = qsockinit(&params);
	CHECK(err == 0, "qsockinit(dev %s, name %s, best effort capped at 2 Mbit/s) = %d, errno %s: %s",
	      dev, sched, err, strerror(errno), qsock_last_error());
	fill(&params, dev, sched, &lift);
	err = qsockinit(&params);
	CHECK(err == 0, "qsockinit(dev %s, the cap lifted) = %d, errno %s: %s", dev, err,
	      strerror(errno), qsock_last_error());
}

/* Sections 3.1.2 and 3.1.3: qsocket, then qsendto with flags. */
static int paper_socket(void)
{
	struct qos_params params;
	struct q_dwcs_attr attrs;
	int fd;

	paper_stream_params(&params, &attrs, DWCS_NON_DROPPABLE);
	/*create scheduled socket*/
	fd = qsocket(AF_INET, SOCK_DGRAM, 0, &params);
	CHECK(fd >= 0, "qsocket: errno %s: %s", strerror(errno), qsock_last_error());
	return fd;
}

static void paper_sendto(int sockfd)
{
	char next_frame[1200];
	struct packet_flags pflags;
	struct sockaddr_in name = receiver;
	socklen_t size = sizeof(name);
	long want_bytes = 0, bytes;
	struct qinfo info;
	int i, got;

	for (i = 0; i < 20; i++) {
		size_t len = 100 + (size_t)i * 50;

		memset(next_frame, 'a' + i, len);
		/*mark the packet as non-droppable*/
		pflags.drop_flag = DWCS_NON_DROPPABLE;
		/*attach a packet deadline to this message*/
		pflags.deadline = now_ns() + 100000000u;
		/*call qsendto and send the packet information down to the scheduler*/
		if (qsendto(sockfd, &next_frame, len, 0, (struct sockaddr *)&name, size,
			    &pflags) < 0) {
			perror("qsendto");
			CHECK(0, "qsendto %d: %s", i, qsock_last_error());
		}
		want_bytes += (long)len;
	}
	got = receive(20, &bytes);
	CHECK(got == 20, "qsendto: %d of 20 datagrams arrived", got);
	CHECK(bytes == want_bytes, "qsendto: %ld bytes arrived, want %ld", bytes, want_bytes);
	check_quiet(__LINE__);

	memset(&info, 0xa5, sizeof(info));
	CHECK(qinfo(sockfd, &info) == 0, "qinfo: %s", qsock_last_error());
	CHECK(info.sent_packets == 20, "qinfo.sent_packets = %llu, want 20",
	      (unsigned long long)info.sent_packets);
	/* The user scheduler counts payload; a kernel qdisc counts the frames
	 * with their headers. */
	if (strcmp(sched, "user") == 0)
		CHECK(info.sent_bytes == (uint64_t)want_bytes, "qinfo.sent_bytes = %llu, want %ld",
		      (unsigned long long)info.sent_bytes, want_bytes);
	else
		CHECK(info.sent_bytes >= (uint64_t)want_bytes + 20 * 28,
		      "qinfo.sent_bytes = %llu, want at least %ld",
		      (unsigned long long)info.sent_bytes, want_bytes + 20 * 28);
	CHECK(info.dropped_packets == 0, "qinfo.dropped_packets = %llu of non-droppable packets",
	      (unsigned long long)info.dropped_packets);
	CHECK(info.dropped_packets == info.dropped_late + info.dropped_window +
					      info.dropped_frame + info.dropped_queue_full,
	      "qinfo.dropped_packets is not the sum of its reasons");
	CHECK(info.backlog_packets == 0, "qinfo.backlog_packets = %llu after all arrived",
	      (unsigned long long)info.backlog_packets);
	CHECK(info.send_buffer_bytes > 0, "qinfo.send_buffer_bytes is 0");
	CHECK(strcmp(sched, "auto") == 0 || strcmp(info.scheduler, sched) == 0,
	      "qinfo.scheduler = \"%.16s\", want \"%s\"", info.scheduler, sched);
}

/*
 * Sends the kernel refuses, refused the same way, with nothing queued,
 * counted or sent: what sendto(2) says on a plain socket, qsend says too.
 */
static void unusable_destinations(int fd)
{
	char packet[10] = "nowhere";
	struct sockaddr_in port0 = receiver;
	struct sockaddr_in6 v6 = { .sin6_family = AF_INET6, .sin6_port = receiver.sin_port,
				   .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct qinfo before, after;
	int plain = socket(AF_INET, SOCK_DGRAM, 0);

	port0.sin_port = 0;
	memset(&before, 0, sizeof(before));
	memset(&after, 0, sizeof(after));
	CHECK(qinfo(fd, &before) == 0, "qinfo: %s", qsock_last_error());

	/* The kernel's answers, on a plain unconnected socket. */
	errno = 0;
	CHECK(send(plain, packet, sizeof(packet), 0) == -1 && errno == EDESTADDRREQ,
	      "send on an unconnected plain socket: errno %s", strerror(errno));
	errno = 0;
	CHECK(sendto(plain, packet, sizeof(packet), 0, (struct sockaddr *)&receiver, 3) == -1 &&
		      errno == EINVAL,
	      "sendto with addrlen 3 on a plain socket: errno %s", strerror(errno));
	close(plain);

	EXPECT_FAIL(qsend(fd, packet, sizeof(packet), 0, NULL), EDESTADDRREQ,
		    "Destination address required");
	EXPECT_FAIL(qsendto(fd, packet, sizeof(packet), 0, (struct sockaddr *)&receiver, 3, NULL),
		    EINVAL, "address length of 3 bytes");
	EXPECT_FAIL(qsendto(fd, packet, sizeof(packet), 0, (struct sockaddr *)&port0,
			    sizeof(port0), NULL),
		    EINVAL, "port is 0");
	EXPECT_FAIL(qsendto(fd, packet, sizeof(packet), 0, (struct sockaddr *)&v6, sizeof(v6),
			    NULL),
		    EAFNOSUPPORT, "not AF_INET");

	CHECK(qinfo(fd, &after) == 0, "qinfo: %s", qsock_last_error());
	CHECK(after.sent_packets == before.sent_packets,
	      "qinfo counts %llu refused sends as sent",
	      (unsigned long long)(after.sent_packets - before.sent_packets));
	CHECK(after.backlog_packets == 0, "refused sends left %llu packets queued",
	      (unsigned long long)after.backlog_packets);
	check_quiet(__LINE__);
}

/* Waits until @fd's scheduler has let @want packets go (it sends on its own time). */
static int wait_sent(int fd, unsigned long long want)
{
	struct qinfo info;
	uint64_t until = now_ns() + 5000000000u;

	do {
		memset(&info, 0, sizeof(info));
		if (qinfo(fd, &info) != 0)
			return 0;
		if (info.sent_packets >= want)
			return 1;
		usleep(1000);
	} while (now_ns() < until);
	return 0;
}

/*
 * The paper's program started before its receiver: qsendto to a port nobody
 * listens on succeeds, as sendto does, however many ICMP port unreachable
 * errors come back; a receiver started later gets the stream.
 */
static void send_before_receiver(void)
{
	struct qos_params params;
	struct q_dwcs_attr attrs = { .oln = 0, .old = 10, .ipg = 10,
				     .stream_flags = DWCS_NON_DROPPABLE };
	struct packet_flags pflags = { .drop_flag = DWCS_NON_DROPPABLE, .deadline = 0 };
	struct sockaddr_in closed;
	struct timeval patience = { .tv_sec = 3, .tv_usec = 0 };
	socklen_t len = sizeof(closed);
	char packet[300], buf[16];
	struct pollfd pfd;
	int fd, witness, late, i, got = 0;

	/* A port that was bound a moment ago and let go. */
	late = socket(AF_INET, SOCK_DGRAM, 0);
	closed = receiver;
	closed.sin_port = 0;
	if (late < 0 || bind(late, (struct sockaddr *)&closed, sizeof(closed)) < 0 ||
	    getsockname(late, (struct sockaddr *)&closed, &len) < 0) {
		CHECK(0, "a port to leave closed: %s", strerror(errno));
		return;
	}
	close(late);

	fill(&params, dev, sched, &attrs);
	fd = qsocket(AF_INET, SOCK_DGRAM, 0, &params);
	CHECK(fd >= 0, "qsocket: %s", qsock_last_error());
	if (fd < 0)
		return;
	/* A plain socket whose recv fails once the network answered it: its
	 * datagram goes after the qsocket's, so the qsocket's ICMP error is back
	 * by then. */
	witness = socket(AF_INET, SOCK_DGRAM, 0);
	CHECK(witness >= 0 && connect(witness, (struct sockaddr *)&closed, sizeof(closed)) == 0 &&
		      setsockopt(witness, SOL_SOCKET, SO_RCVTIMEO, &patience,
				 sizeof(patience)) == 0,
	      "witness socket: %s", strerror(errno));
	memset(packet, 'n', sizeof(packet));
	for (i = 0; i < 5; i++) {
		ssize_t rc;

		pflags.deadline = now_ns() + 100000000u;
		rc = qsendto(fd, packet, sizeof(packet), 0, (struct sockaddr *)&closed,
			     sizeof(closed), &pflags);
		CHECK(rc == (ssize_t)sizeof(packet),
		      "qsendto %d to a port nobody listens on = %zd, errno %s: %s", i, rc,
		      strerror(errno), qsock_last_error());
		CHECK(wait_sent(fd, (unsigned long long)i + 1),
		      "the scheduler did not send datagram %d within 5 s", i);
		errno = 0;
		CHECK(send(witness, "w", 1, 0) == 1 && recv(witness, buf, sizeof(buf), 0) == -1 &&
			      errno == ECONNREFUSED,
		      "no port unreachable came back to the witness: %s", strerror(errno));
	}
	close(witness);

	late = socket(AF_INET, SOCK_DGRAM, 0);
	CHECK(late >= 0 && bind(late, (struct sockaddr *)&closed, sizeof(closed)) == 0,
	      "the late receiver: %s", strerror(errno));
	for (i = 0; i < 5; i++) {
		pflags.deadline = now_ns() + 100000000u;
		CHECK(qsendto(fd, packet, sizeof(packet), 0, (struct sockaddr *)&closed,
			      sizeof(closed), &pflags) == (ssize_t)sizeof(packet),
		      "qsendto %d to the late receiver: %s", i, qsock_last_error());
	}
	pfd = (struct pollfd){ .fd = late, .events = POLLIN };
	while (got < 5 && poll(&pfd, 1, 3000) == 1 && recv(late, buf, sizeof(buf), 0) > 0)
		got++;
	CHECK(got == 5, "the late receiver got %d of 5 datagrams", got);
	close(late);
	CHECK(wait_sent(fd, 10), "qinfo does not count the 10 datagrams sent");
	CHECK(qclose(fd) == 0, "qclose: %s", qsock_last_error());
}

/* qsend on a connected qsocket, with and without flags, and qsendframe. */
static void send_connected_and_frames(int fd)
{
	char packet[500];
	struct packet_flags pflags = { .drop_flag = 0, .deadline = 0 };
	struct iovec frame[4];
	long bytes;
	int i, got;

	CHECK(connect(fd, (struct sockaddr *)&receiver, sizeof(receiver)) == 0, "connect: %s",
	      strerror(errno));
	memset(packet, 'q', sizeof(packet));
	CHECK(qsend(fd, packet, sizeof(packet), 0, NULL) == (ssize_t)sizeof(packet),
	      "qsend with NULL flags: %s", qsock_last_error());
	CHECK(qsend(fd, packet, 300, MSG_DONTWAIT, &pflags) == 300, "qsend: %s",
	      qsock_last_error());
	got = receive(2, &bytes);
	CHECK(got == 2 && bytes == 800, "qsend: %d datagrams, %ld bytes arrived, want 2, 800",
	      got, bytes);

	for (i = 0; i < 4; i++) {
		frame[i].iov_base = packet;
		frame[i].iov_len = 100 + (size_t)i;
	}
	pflags.drop_flag = DWCS_DROPPABLE;
	pflags.deadline = now_ns() + 50000000u;
	CHECK(qsendframe(fd, frame, 4, 0, NULL, 0, &pflags) == 4, "qsendframe: %s",
	      qsock_last_error());
	CHECK(qsendframe(fd, frame, 0, 0, NULL, 0, &pflags) == 0, "empty qsendframe: %s",
	      qsock_last_error());
	got = receive(4, &bytes);
	CHECK(got == 4 && bytes == 406, "qsendframe: %d datagrams, %ld bytes, want 4, 406", got,
	      bytes);
	check_quiet(__LINE__);
}

/* qchange, and its refusals, which leave the stream as it was. */
static void change(int fd)
{
	struct qos_params params;
	struct q_dwcs_attr attrs = { .oln = 1, .old = 10, .ipg = 20,
				     .stream_flags = DWCS_DROPPABLE | DWCS_WORK_CONSERVING };
	struct q_dwcs_attr bad;
	char packet[64] = "after qchange";
	unsigned long long late;
	long bytes;
	int got;

	fill(&params, dev, sched, &attrs);
	CHECK(qchange(fd, &params) == 0, "qchange: %s", qsock_last_error());

	bad = (struct q_dwcs_attr){ .oln = 5, .old = 2, .ipg = 10, .stream_flags = 0 };
	fill(&params, dev, sched, &bad);
	EXPECT_FAIL(qchange(fd, &params), EINVAL, "must not exceed");
	bad = (struct q_dwcs_attr){ .oln = 0, .old = 10, .ipg = 10, .stream_flags = 0x100 };
	EXPECT_FAIL(qchange(fd, &params), EINVAL, "unknown bits");
	fill(&params, dev, sched, NULL);
	EXPECT_FAIL(qchange(fd, &params), EINVAL, "attributes is NULL");
	EXPECT_FAIL(qchange(fd, NULL), EFAULT, "NULL");

	late = late_drops(fd);
	CHECK(qsend(fd, packet, sizeof(packet), 0, NULL) == (ssize_t)sizeof(packet),
	      "qsend after qchange: %s", qsock_last_error());
	got = receive(1, &bytes);
	if (got == 0 && late_drops(fd) == late + 1)
		printf("paper_api: the packet after qchange missed its 20 us deadline and was dropped as late\n");
	else
		CHECK(got == 1 && bytes == (long)sizeof(packet), "after qchange: %d arrived", got);
}

/* Every way qsocket refuses, each with errno and a message. */
static void socket_errors(void)
{
	struct qos_params params;
	struct q_dwcs_attr attrs;

#define BAD_ATTRS(o, l, g, f, want, needle)                                             \
	do {                                                                            \
		attrs = (struct q_dwcs_attr){ .oln = o, .old = l, .ipg = g, .stream_flags = f }; \
		fill(&params, dev, sched, &attrs);                                      \
		EXPECT_FAIL(qsocket(AF_INET, SOCK_DGRAM, 0, &params), want, needle);    \
	} while (0)

	BAD_ATTRS(3, 2, 10, 0, EINVAL, "must not exceed");
	BAD_ATTRS(1, 0, 10, 0, EINVAL, "old (the window length) is 0");
	BAD_ATTRS(0, 10, 0, 0, EINVAL, "ipg is 0");
	BAD_ATTRS(0, 10, 0, DWCS_NON_DROPPABLE, EINVAL, "ipg is 0");
	BAD_ATTRS(0, 10, 10, 0x40, EINVAL, "unknown bits");
	BAD_ATTRS(0, 10, 10, 0x80000000u, EINVAL, "unknown bits");
	BAD_ATTRS(0, 10, 10, DWCS_DROPPABLE | DWCS_NON_DROPPABLE, EINVAL, "choose one");
	BAD_ATTRS(0, 0, 0, DWCS_APERIODIC | DWCS_BEST_EFFORT, EINVAL, "choose one");
#undef BAD_ATTRS

	attrs = (struct q_dwcs_attr){ .oln = 0, .old = 10, .ipg = 10, .stream_flags = 0 };
	fill(&params, dev, sched, NULL);
	EXPECT_FAIL(qsocket(AF_INET, SOCK_DGRAM, 0, &params), EINVAL, "attributes is NULL");
	fill(&params, dev, sched, &attrs);
	memset(params.dev, 'x', IFNAMSIZ);
	EXPECT_FAIL(qsocket(AF_INET, SOCK_DGRAM, 0, &params), EINVAL, "dev is not NUL-terminated");
	fill(&params, dev, sched, &attrs);
	memset(params.name, 'y', IFNAMSIZ);
	EXPECT_FAIL(qsocket(AF_INET, SOCK_DGRAM, 0, &params), EINVAL, "name is not NUL-terminated");
	fill(&params, dev, "cbq", &attrs);
	EXPECT_FAIL(qsocket(AF_INET, SOCK_DGRAM, 0, &params), EOPNOTSUPP, "unknown scheduler");
	fill(&params, "nosuchdev0", sched, &attrs);
	EXPECT_FAIL(qsocket(AF_INET, SOCK_DGRAM, 0, &params), ENODEV, "no network device");
	fill(&params, "", sched, &attrs);
	EXPECT_FAIL(qsocket(AF_INET, SOCK_DGRAM, 0, &params), ENODEV, "no device given");
	EXPECT_FAIL(qsocket(AF_INET, SOCK_DGRAM, 0, NULL), EFAULT, "NULL");
}

/* Sends, qinfo, qchange and qclose on descriptors that are not qsockets. */
static void descriptor_errors(int fd)
{
	char packet[16] = "x";
	struct packet_flags pflags = { .drop_flag = 7, .deadline = 0 };
	struct qos_params params;
	struct q_dwcs_attr attrs = { .oln = 0, .old = 10, .ipg = 10, .stream_flags = 0 };
	struct qinfo info;

	fill(&params, dev, sched, &attrs);
	EXPECT_FAIL(qsend(rx, packet, sizeof(packet), 0, NULL), EBADF, "not a qsocket");
	EXPECT_FAIL(qsendto(rx, packet, sizeof(packet), 0, (struct sockaddr *)&receiver,
			    sizeof(receiver), NULL),
		    EBADF, "not a qsocket");
	EXPECT_FAIL(qinfo(rx, &info), EBADF, "not a qsocket");
	EXPECT_FAIL(qchange(rx, &params), EBADF, "not a qsocket");
	EXPECT_FAIL(qclose(rx), EBADF, "not a qsocket");
	CHECK(is_open(rx), "qclose of a plain socket closed it");
	EXPECT_FAIL(qsend(-1, packet, sizeof(packet), 0, NULL), EBADF, "not a qsocket");
	EXPECT_FAIL(qclose(12345), EBADF, "not a qsocket");

	EXPECT_FAIL(qsend(fd, packet, sizeof(packet), 0, &pflags), EINVAL, "drop_flag 7");
	EXPECT_FAIL(qsend(fd, NULL, 10, 0, NULL), EFAULT, "NULL");
	EXPECT_FAIL(qsend(fd, packet, sizeof(packet), MSG_OOB, NULL), EINVAL, "not supported");
	EXPECT_FAIL(qsendto(fd, packet, sizeof(packet), 0, (struct sockaddr *)&receiver, 1, NULL),
		    EINVAL, "address length");
	EXPECT_FAIL(qsendframe(fd, NULL, 3, 0, NULL, 0, NULL), EFAULT, "NULL");
	EXPECT_FAIL(qinfo(fd, NULL), EFAULT, "NULL");
}

/* Section 3.2: qattach on an existing socket, as the paper writes it. */
static void paper_attach(void)
{
	struct qos_params params;
	struct q_dwcs_attr attrs;
	char packet[256];
	struct qinfo info;
	long bytes;
	int fd, got, rc;

	fd = socket(AF_INET, SOCK_DGRAM, 0);
	CHECK(fd >= 0, "socket: %s", strerror(errno));

	paper_stream_params(&params, &attrs, DWCS_DROPPABLE);
	/*create scheduled socket*/
	CHECK(qattach(fd, &params) == 0, "qattach: errno %s: %s", strerror(errno),
	      qsock_last_error());
	EXPECT_FAIL(qattach(fd, &params), EINVAL, "already a qsocket");

	memset(packet, 'p', sizeof(packet));
	CHECK(qsendto(fd, packet, sizeof(packet), 0, (struct sockaddr *)&receiver,
		      sizeof(receiver), NULL) == (ssize_t)sizeof(packet),
	      "qsendto on an attached socket: %s", qsock_last_error());
	got = receive(1, &bytes);
	memset(&info, 0, sizeof(info));
	rc = qinfo(fd, &info);
	CHECK(rc == 0, "qinfo after qattach = %d, errno %s: %s", rc, strerror(errno),
	      qsock_last_error());
	/* arrived, or dropped as late (see late_drops): either is exact */
	if (got == 0 && info.sent_packets == 0 && late_drops(fd) == 1) {
		printf("paper_api: qattach's packet missed its 10 us deadline and was dropped as late\n");
	} else {
		CHECK(got == 1 && bytes == (long)sizeof(packet), "qattach: %d arrived", got);
		CHECK(info.sent_packets == 1, "qinfo after qattach: sent_packets %llu",
		      (unsigned long long)info.sent_packets);
	}

	CHECK(qclose(fd) == 0, "qclose of the attached socket: %s", qsock_last_error());
	CHECK(!is_open(fd) && errno == EBADF, "qclose left descriptor %d open", fd);
}

/* A failed qattach leaves the descriptor open, unchanged and usable. */
static void attach_failures(void)
{
	struct qos_params params;
	struct q_dwcs_attr bad = { .oln = 4, .old = 3, .ipg = 10, .stream_flags = 0 };
	struct q_dwcs_attr good = { .oln = 0, .old = 10, .ipg = 10, .stream_flags = 0 };
	char packet[77];
	long bytes;
	int fd, null_fd, got;

	fd = socket(AF_INET, SOCK_DGRAM, 0);
	CHECK(fd >= 0, "socket: %s", strerror(errno));
	fill(&params, dev, sched, &bad);
	EXPECT_FAIL(qattach(fd, &params), EINVAL, "must not exceed");
	fill(&params, "nosuchdev0", sched, &good);
	EXPECT_FAIL(qattach(fd, &params), ENODEV, "no network device");
	/* Passes validation and reaches the backend, which refuses it. */
	fill(&params, dev, strcmp(sched, "dwcs") ? "dwcs" : "user", &good);
	EXPECT_FAIL(qattach(fd, &params), EOPNOTSUPP, "");
	fill(&params, dev, sched, NULL);
	EXPECT_FAIL(qattach(fd, &params), EINVAL, "attributes is NULL");

	CHECK(is_open(fd), "a failed qattach closed the descriptor");
	memset(packet, 'z', sizeof(packet));
	CHECK(sendto(fd, packet, sizeof(packet), 0, (struct sockaddr *)&receiver,
		     sizeof(receiver)) == (ssize_t)sizeof(packet),
	      "sendto after a failed qattach: %s", strerror(errno));
	got = receive(1, &bytes);
	CHECK(got == 1 && bytes == (long)sizeof(packet),
	      "after a failed qattach the socket sent %d datagrams", got);
	EXPECT_FAIL(qsend(fd, packet, sizeof(packet), 0, NULL), EBADF, "not a qsocket");
	close(fd);

	/* Not a socket at all. */
	null_fd = open("/dev/null", O_WRONLY);
	fill(&params, dev, sched, &good);
	EXPECT_FAIL(qattach(null_fd, &params), EBADF, "not a usable socket");
	CHECK(is_open(null_fd), "qattach of /dev/null closed it");
	close(null_fd);
	EXPECT_FAIL(qattach(-1, &params), EBADF, "not valid");
}

int main(int argc, char **argv)
{
	int before, after, fd;

	if (argc < 3) {
		fprintf(stderr, "usage: %s DEV SCHEDULER [RECEIVER_ADDRESS]\n", argv[0]);
		return 2;
	}
	dev = argv[1];
	sched = argv[2];
	before = open_fds();

	printf("paper_api: dev %s, scheduler %s\n", dev, sched);
	if (paper_init() < 0)
		return finish();
	init_errors();
	best_effort_cap();

	open_receiver(argc > 3 ? argv[3] : "127.0.0.1");
	fd = paper_socket();
	if (fd < 0) {
		close(rx);
		return finish();
	}
	paper_sendto(fd);
	unusable_destinations(fd);
	send_connected_and_frames(fd);
	change(fd);
	socket_errors();
	descriptor_errors(fd);
	CHECK(qclose(fd) == 0, "qclose: %s", qsock_last_error());
	EXPECT_FAIL(qsend(fd, "x", 1, 0, NULL), EBADF, "not a qsocket");

	paper_attach();
	attach_failures();
	send_before_receiver();
	close(rx);

	/* The scheduler lets go of a closed stream's last packets asynchronously. */
	for (int i = 0; i < 50 && (after = open_fds()) != before; i++)
		usleep(20000);
	CHECK(after == before, "%d descriptors open before, %d after", before, after);
	return finish();
}
