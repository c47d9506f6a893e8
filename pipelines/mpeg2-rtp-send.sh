#!/usr/bin/env bash
# Live MPEG-2 video over RTP (RFC 2250) through qsocksink.
#
#   mpeg2-rtp-send.sh HOST PORT [SCHEDULER]
#
# HOST, PORT: where the receiver listens (mpeg2-rtp-receive.sh PORT).
# SCHEDULER: auto (default), dwcs, htb or user; see README.md, qsocksink.
# Environment: BITRATE kbit/s (1000), FPS (25: MPEG-2 allows 24, 25, 30, 50,
# 60), PATTERN of videotestsrc (pinwheel), LINK_RATE for a scheduler the sink
# installs (e.g. 10mbit; needed for htb on devices that report no speed).
# Runs until interrupted; Ctrl-C ends the stream cleanly (EOS).
set -euo pipefail
source "$(dirname "$0")/common.sh"

sender_setup "$@"
qsocksink_to 400

# mpeg2enc (mjpegtools), because avenc_mpeg2video of GStreamer 1.22 rejects
# every frame rate. CIF, since it needs about 20 ms of CPU a frame there.
# format=9 (DVD) repeats the sequence header in every GOP, so a receiver can
# join at any I-frame (generic MPEG-2, format=3, sends it once);
# constraints=false lets the DVD profile code CIF; no B-frames, so no frame
# waits for a later one; an I-frame every second.
# latency-budget=400: mpeg2enc declares 1.3 s of latency, which qsocksink's
# deadlines count (clock time plus the pipeline's latency plus the budget),
# but around each I-frame it hands out three or four frames up to 300 ms
# later still; with a budget of 100 ms a scheduler that enforces deadlines
# (user, dwcs) drops them as late.
# rtpmpvpay max-ptime=0: every frame in packets of its own (left alone it
# packs small frames and the next frame's start together up to the MTU).
exec gst-launch-1.0 -e \
    videotestsrc is-live=true pattern="$PATTERN" \
    ! video/x-raw,width=352,height=288,framerate="$FPS"/1,format=I420 \
    ! mpeg2enc format=9 constraints=false bitrate="$BITRATE" b-per-refframe=0 \
        min-gop-size="$FPS" max-gop-size="$FPS" \
    ! mpegvideoparse \
    ! rtpmpvpay mtu=1200 max-ptime=0 \
    ! "${QSOCKSINK[@]}"
