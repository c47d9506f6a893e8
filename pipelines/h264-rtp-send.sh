#!/usr/bin/env bash
# Live H.264 over RTP (RFC 6184) through qsocksink.
#
#   h264-rtp-send.sh HOST PORT [SCHEDULER]
#
# HOST, PORT: where the receiver listens (h264-rtp-receive.sh PORT).
# SCHEDULER: auto (default), dwcs, htb or user; see README.md, qsocksink.
# Environment: BITRATE kbit/s (1000), FPS (25), PATTERN of videotestsrc
# (pinwheel), LINK_RATE for a scheduler the sink installs (e.g. 10mbit;
# needed for htb on devices that report no speed, such as veth).
# Runs until interrupted; Ctrl-C ends the stream cleanly (EOS).
set -euo pipefail
source "$(dirname "$0")/common.sh"

h264_sender "$@"
# qsocksink: I-frames and parameter sets are never dropped; other frames may
# be, once they are 100 ms past their clock time.
qsocksink_to 100

# rtph264pay config-interval=0: send the parameter sets as the encoder wrote
# them (-1 would split multi-slice IDR frames into two access units);
# mtu=1200 keeps each datagram under a 1500-byte link MTU.
send_h264 video/x-h264,stream-format=byte-stream ! rtph264pay config-interval=0 mtu=1200
