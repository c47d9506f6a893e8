#!/usr/bin/env bash
# Receives H.264 over RTP (from adaptive-send.sh or h264-rtp-send.sh) with
# a stock GStreamer receiver that answers the sender with RTCP, which
# qsocksink needs to adapt to the path (adapt-bitrate=true): receiver
# reports (loss, jitter, and the echo of the sink's sender reports that
# gives the round trip) and, when a packet is missed, a picture loss
# indication (PLI), which the sink turns into a request for a key frame.
#
#   h264-rtp-receive-rtcp.sh PORT SENDER
#
# PORT: where the stream arrives (the sender's PORT); the RTCP goes from
# here to SENDER's PORT + 1, and the sender's reports arrive on PORT + 1.
# The sender must be another host (or network namespace): on one host the
# sink and this receiver would both want PORT + 1.
# Environment: LATENCY of the jitter buffer in ms (200), RTCP_INTERVAL in
# ms (500), VIDEO_SINK (autovideosink; fakesink to decode without a
# display). Prints `rendered: N, dropped: D, current: F, average: A`
# (frames decoded so far, frames per second) every 500 ms. Runs until
# interrupted. The pipeline is common.sh's rtcp_receive.
set -euo pipefail
source "$(dirname "$0")/common.sh"

rtcp_receive "" "$@"
