#!/usr/bin/env bash
# Receives H.264 over RTP (from h264-rtp-send.sh or adaptive-send.sh),
# decodes it and prints
# one line a second: frames decoded per second, inter-frame jitter, and lost
# frames by type (qsock-receive --help defines each field).
#
#   h264-rtp-receive.sh PORT [qsock-receive options]
#
# e.g. --seconds 10 to stop after ten lines, --csv FILE to keep them,
# --display to watch the video. qsock-receive runs this pipeline, with
# fakesink unless --display, and prints it as it starts:
#
#   gst-launch-1.0 udpsrc port=PORT caps="application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96" ! rtpjitterbuffer latency=200 ! rtph264depay ! h264parse ! avdec_h264 ! autovideosink
#
# (the gst-launch-1.0 line alone shows the video but cannot count losses by
# frame type: qsock-receive reads the packets before the depayloader).
set -euo pipefail
source "$(dirname "$0")/common.sh"

receive h264-rtp "$@"
