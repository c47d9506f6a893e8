//! RTCP packets a receiver sends, built with GStreamer's RTCP buffer API
//! (`GstRTCPBuffer` of gstreamer-rtp, which the Rust crate exposes only
//! through its C bindings): receiver reports (RFC 3550 §6.4.2) and picture
//! loss indications (RFC 4585 §6.3.1). The test's only unsafe code: each
//! function maps one new buffer, fills it, and unmaps it before it returns,
//! so no pointer into the buffer outlives the call.

use gst::glib::translate::from_glib_full;
use gst_rtp::ffi;

/// What a receiver says about one source in a report block.
#[derive(Debug, Clone, Copy)]
pub struct Reception {
    /// The source reported on.
    pub ssrc: u32,
    /// Share lost since the last report, in 1/256 (255: all of it).
    pub fraction_lost: u8,
    pub cumulative_lost: i32,
    /// LSR: the middle 32 bits of the last sender report's NTP time.
    pub last_sender_report: u32,
    /// DLSR, in 1/65536 s.
    pub delay_since_last_sender_report: u32,
}

impl Reception {
    /// Nothing lost, no sender report echoed, about `ssrc`.
    pub fn on(ssrc: u32) -> Reception {
        Reception {
            ssrc,
            fraction_lost: 0,
            cumulative_lost: 0,
            last_sender_report: 0,
            delay_since_last_sender_report: 0,
        }
    }
}

/// A receiver report from `reporter` with one block.
pub fn receiver_report(reporter: u32, reception: Reception) -> Vec<u8> {
    build(ffi::GST_RTCP_TYPE_RR, |packet| {
        // SAFETY: `packet` is the RR packet just added to a buffer mapped for
        // writing with room for it and one report block.
        unsafe {
            ffi::gst_rtcp_packet_rr_set_ssrc(packet, reporter);
            ffi::gst_rtcp_packet_add_rb(
                packet,
                reception.ssrc,
                reception.fraction_lost,
                reception.cumulative_lost,
                0,
                0,
                reception.last_sender_report,
                reception.delay_since_last_sender_report,
            ) != 0
        }
    })
}

/// A picture loss indication from `reporter` about `media` (reduced size,
/// RFC 5506: the PSFB packet alone, as AVPF's early feedback may be).
pub fn picture_loss(reporter: u32, media: u32) -> Vec<u8> {
    build(ffi::GST_RTCP_TYPE_PSFB, |packet| {
        // SAFETY: `packet` is the PSFB packet just added to a buffer mapped
        // for writing; a PLI has no feedback control information.
        unsafe {
            ffi::gst_rtcp_packet_fb_set_type(packet, ffi::GST_RTCP_PSFB_TYPE_PLI);
            ffi::gst_rtcp_packet_fb_set_sender_ssrc(packet, reporter);
            ffi::gst_rtcp_packet_fb_set_media_ssrc(packet, media);
        }
        true
    })
}

/// A full intra request (RFC 5104 §4.3.1) from `reporter` asking `media`
/// for a key frame, with command sequence number `sequence`.
pub fn full_intra_request(reporter: u32, media: u32, sequence: u8) -> Vec<u8> {
    let mut entry = [0u8; 8];
    entry[..4].copy_from_slice(&media.to_be_bytes());
    entry[4] = sequence;
    build(ffi::GST_RTCP_TYPE_PSFB, |packet| {
        // SAFETY: `packet` is the PSFB packet just added to a buffer mapped
        // for writing; set_fci_length makes room for the two-word entry (or
        // fails, checked), and get_fci then points at those eight bytes.
        unsafe {
            ffi::gst_rtcp_packet_fb_set_type(packet, ffi::GST_RTCP_PSFB_TYPE_FIR);
            ffi::gst_rtcp_packet_fb_set_sender_ssrc(packet, reporter);
            // RFC 5104: the media source field is unused (0) in a FIR.
            ffi::gst_rtcp_packet_fb_set_media_ssrc(packet, 0);
            if ffi::gst_rtcp_packet_fb_set_fci_length(packet, 2) == 0 {
                return false;
            }
            let fci = ffi::gst_rtcp_packet_fb_get_fci(packet);
            if fci.is_null() {
                return false;
            }
            std::ptr::copy_nonoverlapping(entry.as_ptr(), fci, entry.len());
        }
        true
    })
}

/// The sender's SSRC in a sender report, and the middle 32 bits of its NTP
/// time (RFC 3550 §6.4.1), what a receiver echoes as LSR; None when
/// `datagram` does not start with a valid SR.
pub fn sender_report(datagram: &[u8]) -> Option<(u32, u32)> {
    let mut buffer = gst::Buffer::from_slice(datagram.to_vec());
    let buffer = buffer.make_mut();
    // SAFETY: `buffer` is a valid buffer we own; validation only reads it.
    if unsafe { ffi::gst_rtcp_buffer_validate_reduced(buffer.as_mut_ptr()) } == 0 {
        return None;
    }
    // SAFETY: an all-zero GstRTCPBuffer is GST_RTCP_BUFFER_INIT.
    let mut rtcp: ffi::GstRTCPBuffer = unsafe { std::mem::zeroed() };
    // SAFETY: `buffer` is ours for the whole call; unmapped below.
    if unsafe { ffi::gst_rtcp_buffer_map(buffer.as_mut_ptr(), gst::ffi::GST_MAP_READ, &mut rtcp) }
        == 0
    {
        return None;
    }
    // SAFETY: an all-zero GstRTCPPacket, which get_first_packet positions.
    let mut packet: ffi::GstRTCPPacket = unsafe { std::mem::zeroed() };
    let mut ntp = None;
    // SAFETY: `rtcp` is mapped; `packet` is positioned on its first packet
    // before it is read, and the out-parameters are ours.
    unsafe {
        if ffi::gst_rtcp_buffer_get_first_packet(&mut rtcp, &mut packet) != 0
            && ffi::gst_rtcp_packet_get_type(&mut packet) == ffi::GST_RTCP_TYPE_SR
        {
            let (mut ssrc, mut time, mut rtp_time, mut packets, mut octets) = (0, 0, 0, 0, 0);
            ffi::gst_rtcp_packet_sr_get_sender_info(
                &mut packet,
                &mut ssrc,
                &mut time,
                &mut rtp_time,
                &mut packets,
                &mut octets,
            );
            ntp = Some((ssrc, (time >> 16) as u32));
        }
        ffi::gst_rtcp_buffer_unmap(&mut rtcp);
    }
    ntp
}

/// A buffer with one packet of `packet_type`, filled by `fill`.
fn build(
    packet_type: ffi::GstRTCPType,
    fill: impl FnOnce(*mut ffi::GstRTCPPacket) -> bool,
) -> Vec<u8> {
    // SAFETY: returns a new buffer we own, or null (checked).
    let raw = unsafe { ffi::gst_rtcp_buffer_new(1500) };
    assert!(!raw.is_null(), "gst_rtcp_buffer_new failed");
    // SAFETY: `raw` is a new buffer whose one reference passes to `buffer`.
    let mut buffer: gst::Buffer = unsafe { from_glib_full(raw) };
    let writable = buffer.get_mut().expect("a new buffer is writable");
    // SAFETY: an all-zero GstRTCPBuffer is GST_RTCP_BUFFER_INIT.
    let mut rtcp: ffi::GstRTCPBuffer = unsafe { std::mem::zeroed() };
    // SAFETY: `writable` is ours; it is unmapped below on every path.
    let mapped = unsafe {
        ffi::gst_rtcp_buffer_map(
            writable.as_mut_ptr(),
            gst::ffi::GST_MAP_READWRITE,
            &mut rtcp,
        )
    };
    assert!(mapped != 0, "cannot map a new RTCP buffer");
    // SAFETY: an all-zero GstRTCPPacket, which add_packet positions.
    let mut packet: ffi::GstRTCPPacket = unsafe { std::mem::zeroed() };
    // SAFETY: `rtcp` is mapped for writing and has room for one packet.
    let added =
        unsafe { ffi::gst_rtcp_buffer_add_packet(&mut rtcp, packet_type, &mut packet) } != 0;
    let filled = added && fill(&mut packet);
    // SAFETY: mapped above; unmapping sets the buffer's size to the packets'.
    unsafe { ffi::gst_rtcp_buffer_unmap(&mut rtcp) };
    assert!(filled, "cannot write an RTCP packet of type {packet_type}");
    let bytes = buffer
        .map_readable()
        .expect("a buffer is readable")
        .as_slice()
        .to_vec();
    bytes
}
