# shellcheck shell=bash
# Sourced by the scripts in this folder: finds the repository, points
# GStreamer at the qsocksink plugin built there, and checks what the scripts
# need before gst-launch-1.0 or qsock-receive would fail less clearly.

PIPELINES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$PIPELINES_DIR")
# Cargo's output folder; CARGO_TARGET_DIR moves it, as it does for cargo.
RELEASE_DIR=${CARGO_TARGET_DIR:-$REPO_DIR/target}/release

die() {
    echo "$(basename "$0"): $*" >&2
    exit 2
}

# The qsocksink element, from this repository's release build.
use_qsocksink() {
    if [ ! -f "$RELEASE_DIR/libgstqsocksink.so" ]; then
        die "the qsocksink plugin is not built ($RELEASE_DIR/libgstqsocksink.so is missing): run cargo build --release -p gst-qsocksink (or make build) in $REPO_DIR"
    fi
    export GST_PLUGIN_PATH="$RELEASE_DIR${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
}

# A sender's command line, HOST PORT [SCHEDULER], and the environment every
# sender reads, BITRATE (kbit/s), FPS and PATTERN, with their defaults; checks
# them all and points GStreamer at qsocksink.
sender_setup() {
    [ $# -ge 2 ] && [ $# -le 3 ] || die "usage: $0 HOST PORT [SCHEDULER]"
    # shellcheck disable=SC2034 # the sourcing script's gst-launch-1.0 line reads them
    HOST=$1 PORT=$2 SCHEDULER=${3:-auto}
    BITRATE=${BITRATE:-1000} FPS=${FPS:-25} PATTERN=${PATTERN:-pinwheel}
    check_port "$PORT"
    check_scheduler "$SCHEDULER"
    check_number BITRATE "$BITRATE"
    check_number FPS "$FPS"
    use_qsocksink
}

# The live H.264 stream of the H.264 senders, as gst-launch-1.0 arguments in
# H264_SOURCE; the arguments name x264enc's first properties (a name).
# x264enc: zerolatency (no B-frames, no lookahead) and an I-frame every
# second; as a byte-stream it repeats SPS and PPS before every I-frame, so a
# receiver can join at any I-frame.
# shellcheck disable=SC2120 # adaptive-send.sh names the encoder
h264_source() {
    # shellcheck disable=SC2034,SC2054 # the sender's gst-launch-1.0 line reads it; caps take commas
    H264_SOURCE=(
        videotestsrc is-live=true pattern="$PATTERN"
        ! video/x-raw,width=640,height=360,framerate="$FPS"/1
        ! x264enc "$@" tune=zerolatency speed-preset=ultrafast bitrate="$BITRATE"
        key-int-max="$FPS"
    )
}

# The command line and environment of an H.264 sender (sender_setup), and
# its live stream in H264_SOURCE (h264_source, with x264enc's defaults).
h264_sender() {
    sender_setup "$@"
    h264_source
}

# Runs H264_SOURCE through the gst-launch-1.0 elements given (what makes
# datagrams of it) into QSOCKSINK, until interrupted; Ctrl-C ends the
# stream cleanly (EOS). -m first prints the bus's messages.
send_h264() {
    local print_messages=()
    if [ "${1:-}" = -m ]; then
        print_messages=(-m)
        shift
    fi
    exec gst-launch-1.0 -e "${print_messages[@]}" "${H264_SOURCE[@]}" ! "$@" ! "${QSOCKSINK[@]}"
}

# qsocksink sending to the sender's HOST and PORT with its SCHEDULER, as
# gst-launch-1.0 arguments in QSOCKSINK: BUDGET [PROPERTY=VALUE...], the
# latency budget in ms and further properties; LINK_RATE, when set, last.
qsocksink_to() {
    local budget=$1
    shift
    # shellcheck disable=SC2034,SC2206 # the sender's gst-launch-1.0 line reads it; an empty LINK_RATE adds no argument
    QSOCKSINK=(
        qsocksink host="$HOST" port="$PORT" scheduler="$SCHEDULER" latency-budget="$budget" "$@"
        ${LINK_RATE:+link-rate="$LINK_RATE"}
    )
}

# A receiver's command line, PORT [qsock-receive options]: runs the receiver
# with statistics (receiver/ in this repository) for stream FORMAT.
receive() {
    local format=$1
    shift
    [ $# -ge 1 ] || die "usage: $0 PORT [qsock-receive options]"
    local port=$1
    shift
    check_port "$port"
    if [ ! -x "$RELEASE_DIR/qsock-receive" ]; then
        die "qsock-receive is not built ($RELEASE_DIR/qsock-receive is missing): run cargo build --release -p qsock-receiver (or make build) in $REPO_DIR"
    fi
    exec "$RELEASE_DIR/qsock-receive" --format "$format" --port "$port" "$@"
}

# A whole number in 1..65535, or a clear error naming the argument.
check_port() {
    case "$1" in
        '' | *[!0-9]*) die "PORT must be a UDP port number, not '$1'" ;;
    esac
    [ "$1" -ge 1 ] && [ "$1" -le 65535 ] || die "PORT must be in 1..65535, not $1"
}

check_scheduler() {
    case "$1" in
        auto | dwcs | htb | user) ;;
        *) die "SCHEDULER must be auto, dwcs, htb or user, not '$1'" ;;
    esac
}

check_number() {
    case "$2" in
        '' | *[!0-9]*) die "$1 must be a whole number, not '$2'" ;;
    esac
}

# The RTP header extension of transport-wide congestion control.
# shellcheck disable=SC2034 # the TWCC scripts read it
TWCC_EXTENSION_URI=http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01

# A stock GStreamer receiver of H.264 over RTP that answers the sender with
# RTCP; the command line PORT SENDER, and CAPS_FIELDS the stream's caps add
# (an extmap for TWCC). rtpsession with the AVPF profile (RFC 4585) sends
# receiver reports every RTCP_INTERVAL ms at least (500; RFC 3550's
# default is 5 s, too slow for adapting a bitrate) and a PLI at once when
# rtph264depay misses a packet (request-keyframe=true), all to SENDER's
# PORT + 1; the sender's reports arrive on PORT + 1 here. fpsdisplaysink
# counts the frames decoded: gst-launch-1.0 -v prints its line (and
# nothing else, -X) every 500 ms.
rtcp_receive() {
    local fields=$1
    shift
    [ $# -eq 2 ] || die "usage: $0 PORT SENDER"
    local port=$1 sender=$2
    check_port "$port"
    [ "$port" -lt 65535 ] || die "PORT must leave PORT + 1 for RTCP, so below 65535"
    local latency=${LATENCY:-200} interval=${RTCP_INTERVAL:-500}
    check_number LATENCY "$latency"
    check_number RTCP_INTERVAL "$interval"
    local quiet=()
    local property
    for property in caps stats drop-on-latency do-lost mode do-retransmission \
        max-rtcp-rtp-time-diff max-dropout-time max-misorder-time rfc7273-sync \
        add-reference-timestamp-meta max-ts-offset-adjustment sync-interval latency sync; do
        quiet+=(-X "$property")
    done
    # shellcheck disable=SC2054 # caps take commas
    exec gst-launch-1.0 -e -v "${quiet[@]}" \
        rtpsession name=session rtp-profile=avpf \
        rtcp-min-interval="$((interval * 1000000))" \
        udpsrc port="$port" \
        caps="application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96$fields" \
        ! session.recv_rtp_sink \
        session.recv_rtp_src ! rtpjitterbuffer latency="$latency" \
        ! rtph264depay request-keyframe=true ! h264parse ! avdec_h264 ! videoconvert \
        ! fpsdisplaysink video-sink="${VIDEO_SINK:-autovideosink}" text-overlay=false sync=false \
        udpsrc port="$((port + 1))" caps=application/x-rtcp ! session.recv_rtcp_sink \
        session.send_rtcp_src ! udpsink host="$sender" port="$((port + 1))" sync=false async=false
}
