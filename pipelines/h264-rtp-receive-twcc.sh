#!/usr/bin/env bash
# h264-rtp-receive-rtcp.sh, and transport-wide congestion control feedback
# too: the stream's caps name the TWCC header extension (id 1), so
# rtpsession answers every packet that carries it with its arrival time
# (RTPFB, draft-holmer-rmcat-transport-wide-cc-extensions-01), as a
# WebRTC receiver does. The sender must add the extension:
# TWCC=1 adaptive-send.sh HOST PORT.
#
#   h264-rtp-receive-twcc.sh PORT SENDER
#
# Environment and output as h264-rtp-receive-rtcp.sh's.
set -euo pipefail
source "$(dirname "$0")/common.sh"

rtcp_receive ",extmap-1=$TWCC_EXTENSION_URI" "$@"
