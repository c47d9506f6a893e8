/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * admission.c - a stream qsockd cannot admit, refused through the C ABI with
 * EBUSY and qsockd's own words. Run by tests/c/run.sh as an unprivileged
 * user, against qsockd running htb at 10gbit (80 % reservable).
 *
 * usage: admission DEV
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "qsock.h"

int main(int argc, char **argv)
{
	/* Full-size packets every 2 us: some 6 Gbit/s each. */
	struct q_dwcs_attr attrs = { .oln = 0, .old = 10, .ipg = 2,
				     .stream_flags = DWCS_DROPPABLE };
	struct qos_params params;
	const char *message;
	int first, second, refused;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DEV\n", argv[0]);
		return 2;
	}
	memset(&params, 0, sizeof(params));
	strncpy(params.dev, argv[1], IFNAMSIZ - 1);
	strncpy(params.name, "htb", IFNAMSIZ - 1);
	params.attributes = &attrs;

	first = qsocket(AF_INET, SOCK_DGRAM, 0, &params);
	if (first < 0) {
		fprintf(stderr, "FAIL: the first stream was refused: %s\n", qsock_last_error());
		return 1;
	}
	errno = 0;
	second = qsocket(AF_INET, SOCK_DGRAM, 0, &params);
	refused = errno;
	message = qsock_last_error();
	if (second >= 0 || refused != EBUSY || !strstr(message, "qsockd")) {
		fprintf(stderr, "FAIL: a second 6 Gbit/s stream gave %d, errno %d (%s), \"%s\"; "
			"want -1, EBUSY and qsockd's refusal\n",
			second, refused, strerror(refused), message);
		return 1;
	}
	printf("admission: refused with EBUSY: %s\n", message);
	if (qclose(first) != 0) {
		fprintf(stderr, "FAIL: qclose: %s\n", qsock_last_error());
		return 1;
	}
	printf("admission: ok\n");
	return 0;
}
