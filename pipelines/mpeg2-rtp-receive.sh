#!/usr/bin/env bash
# Receives MPEG-2 video over RTP (from mpeg2-rtp-send.sh), decodes it and prints
# one line a second: frames decoded per second, inter-frame jitter, and lost
# frames by type (qsock-receive --help defines each field).
#
#   mpeg2-rtp-receive.sh PORT [qsock-receive options]
#
# e.g. --seconds 10 to stop after ten lines, --csv FILE to keep them,
# --display to watch the video. qsock-receive runs this pipeline, with
# fakesink unless --display, and prints it as it starts:
#
#   gst-launch-1.0 udpsrc port=PORT caps="application/x-rtp,media=video,clock-rate=90000,encoding-name=MPV,payload=32" ! rtpjitterbuffer latency=200 ! rtpmpvdepay ! mpegvideoparse ! avdec_mpeg2video ! autovideosink
#
# (the gst-launch-1.0 line alone shows the video but cannot count losses by
# frame type: qsock-receive reads the packets before the depayloader).
set -euo pipefail
source "$(dirname "$0")/common.sh"

receive mpeg2-rtp "$@"
