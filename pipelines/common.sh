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
