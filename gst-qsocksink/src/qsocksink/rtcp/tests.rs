use super::*;
use crate::sys::SenderInfo;

const OURS: u32 = 0x1234_5678;
const RECEIVER: u32 = 0xcafe_f00d;

fn init() {
    gst::init().unwrap_or_else(|err| panic!("GStreamer: {err}"));
}

/// An RTCP header: version 2, `count`, `packet_type`, and the length in
/// 32-bit words minus one of a packet with `body` after the header.
fn packet(count: u8, packet_type: u8, body: &[u8]) -> Vec<u8> {
    let words = u16::try_from(body.len() / 4).unwrap_or(u16::MAX);
    let mut bytes = vec![0x80 | count, packet_type];
    bytes.extend_from_slice(&words.to_be_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// A receiver report from RECEIVER with one block about `about`.
fn receiver_report(about: u32, fraction_lost: u8, lsr: u32, dlsr: u32) -> Vec<u8> {
    let mut body = RECEIVER.to_be_bytes().to_vec();
    body.extend_from_slice(&about.to_be_bytes());
    body.push(fraction_lost);
    body.extend_from_slice(&[0, 0, 7]); // cumulative lost: 7
    body.extend_from_slice(&1000u32.to_be_bytes()); // highest sequence
    body.extend_from_slice(&450u32.to_be_bytes()); // jitter
    body.extend_from_slice(&lsr.to_be_bytes());
    body.extend_from_slice(&dlsr.to_be_bytes());
    packet(1, 201, &body)
}

fn picture_loss(media: u32) -> Vec<u8> {
    let mut body = RECEIVER.to_be_bytes().to_vec();
    body.extend_from_slice(&media.to_be_bytes());
    packet(1, 206, &body)
}

fn full_intra(asked: u32) -> Vec<u8> {
    let mut body = RECEIVER.to_be_bytes().to_vec();
    body.extend_from_slice(&0u32.to_be_bytes());
    body.extend_from_slice(&asked.to_be_bytes());
    body.extend_from_slice(&[1, 0, 0, 0]);
    packet(4, 206, &body)
}

#[test]
fn a_report_about_the_stream_gives_loss_jitter_and_round_trip() {
    init();
    // Sent 1.5 s after the sender report it echoes, held 0.25 s there.
    let lsr = 0x0001_0000;
    let arrival = lsr + 0x0001_8000;
    let message = read(&receiver_report(OURS, 64, lsr, 0x4000), OURS, arrival)
        .unwrap_or_else(|refusal| panic!("{refusal:?}"));
    assert_eq!(message.reports.len(), 1);
    let report = message.reports[0];
    assert_eq!(report.fraction_lost, 0.25);
    assert_eq!(report.cumulative_lost, 7);
    assert_eq!(report.jitter_ticks, 450);
    assert_eq!(report.round_trip, Some(Duration::from_millis(1250)));
    assert!(message.key_unit_requests.is_empty());
}

#[test]
fn no_round_trip_before_a_sender_report_or_from_a_stale_echo() {
    init();
    let before = read(&receiver_report(OURS, 0, 0, 0), OURS, 99).expect("valid");
    assert_eq!(before.reports[0].round_trip, None);
    // DLSR longer than the time since LSR: the clocks disagree.
    let stale = read(&receiver_report(OURS, 0, 100, 200), OURS, 150).expect("valid");
    assert_eq!(stale.reports[0].round_trip, None);
}

#[test]
fn key_unit_requests_for_the_stream_are_read_and_others_are_not_ours() {
    init();
    let pli = read(&picture_loss(OURS), OURS, 0).expect("a PLI for us");
    assert_eq!(pli.key_unit_requests, [KeyUnitRequest::PictureLoss]);
    let fir = read(&full_intra(OURS), OURS, 0).expect("a FIR for us");
    assert_eq!(fir.key_unit_requests, [KeyUnitRequest::FullIntra]);
    for other in [picture_loss(7), full_intra(7), receiver_report(7, 0, 0, 0)] {
        assert_eq!(read(&other, OURS, 0), Err(Refusal::OtherSource));
    }
    // A compound packet: the report and the request both count.
    let compound = [receiver_report(OURS, 0, 0, 0), picture_loss(OURS)].concat();
    let both = read(&compound, OURS, 0).expect("valid");
    assert_eq!((both.reports.len(), both.key_unit_requests.len()), (1, 1));
}

#[test]
fn a_minimal_compound_packet_is_no_refusal_and_says_nothing() {
    init();
    // An RR without report blocks and an SDES with the receiver's CNAME,
    // as rtpsession sends beside its transport-wide feedback.
    let empty_report = packet(0, 201, &RECEIVER.to_be_bytes());
    let mut sdes = RECEIVER.to_be_bytes().to_vec();
    sdes.extend_from_slice(&[1, 6]);
    sdes.extend_from_slice(b"r@host");
    sdes.extend_from_slice(&[0, 0, 0, 0]);
    let minimal = [empty_report, packet(1, 202, &sdes)].concat();
    assert_eq!(read(&minimal, OURS, 0), Ok(ReceiverMessage::default()));
    // With a block about another source, it is about someone else.
    let other = [receiver_report(7, 0, 0, 0), packet(1, 202, &sdes)].concat();
    assert_eq!(read(&other, OURS, 0), Err(Refusal::OtherSource));
    // In the stream's own name, a forgery.
    let forged = packet(0, 201, &OURS.to_be_bytes());
    assert_eq!(read(&forged, OURS, 0), Err(Refusal::OtherSource));
}

#[test]
fn malformed_and_truncated_packets_are_refused() {
    init();
    let report = receiver_report(OURS, 0, 0, 0);
    let mut wrong_version = report.clone();
    wrong_version[0] &= 0x3f;
    let mut wrong_length = report.clone();
    wrong_length[3] += 1;
    let rtp = [0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x65];
    for bad in [
        &report[..report.len() - 4],
        &report[..3],
        &wrong_version[..],
        &wrong_length[..],
        &rtp[..],
        &[][..],
    ] {
        assert_eq!(read(bad, OURS, 0), Err(Refusal::Malformed), "{bad:02x?}");
    }
}

#[test]
fn rtcp_is_told_from_rtp_on_one_port() {
    assert!(is_rtcp(&receiver_report(OURS, 0, 0, 0)));
    assert!(is_rtcp(&picture_loss(OURS)));
    assert!(!is_rtcp(&[0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]));
    assert!(!is_rtcp(&[0x80, 0x80 | 96, 0, 1, 0, 0, 0, 0]));
}

#[test]
fn a_sender_report_reads_back_through_gstreamer() {
    init();
    let info = SenderInfo {
        ssrc: OURS,
        ntp_time: ntp_time(SystemTime::now()),
        rtp_time: 90_000,
        packets: 12,
        octets: 12_000,
    };
    let bytes = sys::sender_report(info, "qsocksink@sender").expect("an SR");
    let packets = sys::parse_rtcp(&bytes).expect("valid RTCP");
    assert_eq!(
        packets[0],
        RtcpPacket::Report {
            reporter: OURS,
            blocks: Vec::new()
        }
    );
    assert_eq!(packets[1], RtcpPacket::Other(202), "SDES follows");
    // A receiver that echoes it a second later, having held it 0.5 s.
    let lsr = compact_ntp(info.ntp_time);
    let echo = receiver_report(OURS, 0, lsr, 0x8000);
    let arrival = compact_ntp(info.ntp_time + (1 << 32));
    let report = read(&echo, OURS, arrival).expect("valid").reports[0];
    let rtt = report.round_trip.expect("a round trip");
    assert!(
        rtt.abs_diff(Duration::from_millis(500)) < Duration::from_millis(1),
        "{rtt:?}"
    );
}

#[test]
fn ntp_time_counts_from_1900() {
    let unix = UNIX_EPOCH + Duration::from_millis(1500);
    let ntp = ntp_time(unix);
    assert_eq!(ntp >> 32, NTP_UNIX_OFFSET_SECS + 1);
    assert_eq!(ntp & 0xffff_ffff, 1 << 31);
    assert_eq!(
        compact_ntp(ntp),
        (((NTP_UNIX_OFFSET_SECS + 1) as u32) << 16) | 0x8000
    );
}
