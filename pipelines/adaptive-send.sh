#!/usr/bin/env bash
# Live H.264 over RTP whose bitrate follows what the path carries on time:
# qsocksink estimates it from the scheduler's reports and sets x264enc's
# bitrate (adapt-bitrate=true).
#
#   adaptive-send.sh HOST PORT [SCHEDULER]
#
# HOST, PORT: where the receiver listens (h264-rtp-receive.sh PORT, or
# h264-rtp-receive-rtcp.sh PORT SENDER, whose RTCP lets the sink adapt to
# the path beyond this host).
# SCHEDULER: auto (default), dwcs, htb or user; see README.md, qsocksink.
# Environment: BITRATE kbit/s to start from (1000), MIN_BITRATE and
# MAX_BITRATE kbit/s the estimate stays within (200, 4000), FPS (25), PATTERN
# of videotestsrc (pinwheel), LINK_RATE for a scheduler the sink installs,
# TWCC=1 to add the transport-wide congestion control header extension
# (for h264-rtp-receive-twcc.sh).
# Runs until interrupted; Ctrl-C ends the stream cleanly (EOS). -m prints
# the sink's qsocksink-stats message (with estimated-bitrate) every 500 ms.
set -euo pipefail
source "$(dirname "$0")/common.sh"

sender_setup "$@"
MIN_BITRATE=${MIN_BITRATE:-200} MAX_BITRATE=${MAX_BITRATE:-4000}
check_number MIN_BITRATE "$MIN_BITRATE"
check_number MAX_BITRATE "$MAX_BITRATE"
[ "$MIN_BITRATE" -le "$MAX_BITRATE" ] ||
    die "MIN_BITRATE ($MIN_BITRATE) must not be above MAX_BITRATE ($MAX_BITRATE)"
h264_source name=encoder
qsocksink_to 100 adapt-bitrate=true qos-interval=500 \
    min-bitrate="$((MIN_BITRATE * 1000))" max-bitrate="$((MAX_BITRATE * 1000))"

# The stream is h264-rtp-send.sh's; x264enc is named so that the sink finds
# it as the nearest upstream encoder (it would without the name too).
# qsocksink's bitrates are in bit/s, x264enc's in kbit/s.
# With TWCC=1 the caps after the payloader name the extension, and the
# payloader (auto-header-extension) adds it to every packet.
twcc_caps=()
case "${TWCC:-0}" in
    0) ;;
    1) twcc_caps=(! "application/x-rtp,extmap-1=$TWCC_EXTENSION_URI") ;;
    *) die "TWCC must be 0 or 1, not '$TWCC'" ;;
esac
send_h264 -m video/x-h264,stream-format=byte-stream ! rtph264pay config-interval=0 mtu=1200 \
    "${twcc_caps[@]}"
