#!/usr/bin/env bash
# Live H.264 in an MPEG transport stream over plain UDP through qsocksink.
#
#   mpegts-udp-send.sh HOST PORT [SCHEDULER]
#
# HOST, PORT: where the receiver listens (mpegts-udp-receive.sh PORT).
# SCHEDULER: auto (default), dwcs, htb or user; see README.md, qsocksink.
# Environment: BITRATE kbit/s (1000), FPS (25), PATTERN of videotestsrc
# (pinwheel), LINK_RATE for a scheduler the sink installs (e.g. 10mbit;
# needed for htb on devices that report no speed, such as veth).
# Runs until interrupted; Ctrl-C ends the stream cleanly (EOS).
set -euo pipefail
source "$(dirname "$0")/common.sh"

h264_sender "$@"
# qsocksink: a transport stream frame has no end marker, so the sink holds
# each frame until the next one starts; the period it derives (ipg=0) is
# shortened at once for a frame that would not leave in time otherwise.
qsocksink_to 100

# h264parse hands the muxer whole access units.
# mpegtsmux alignment=7: seven 188-byte packets a datagram (1316 bytes).
send_h264 h264parse ! video/x-h264,stream-format=byte-stream,alignment=au \
    ! mpegtsmux alignment=7
