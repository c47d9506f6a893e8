//! The crate's only unsafe code: GStreamer's RTCP buffer API
//! (`GstRTCPBuffer`, `GstRTCPPacket` of gstreamer-rtp), which gstreamer-rtp's
//! Rust crate exposes only through its C bindings. Each function here maps
//! one buffer, walks or fills it, and unmaps it before it returns, so no
//! pointer into the buffer outlives the call.

use gst::glib::translate::from_glib_full;
use gst_rtp::ffi;

/// One report block of a sender or receiver report (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReportBlock {
    pub ssrc: u32,
    pub fraction_lost: u8,
    pub packets_lost: i32,
    pub highest_sequence: u32,
    pub jitter: u32,
    pub last_sender_report: u32,
    pub delay_since_last_sender_report: u32,
}

/// One packet of a compound RTCP packet, as far as the sink reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RtcpPacket {
    /// SR or RR: who reports, and on which sources.
    Report {
        reporter: u32,
        blocks: Vec<ReportBlock>,
    },
    /// RTPFB (205) or PSFB (206): the feedback message type (FMT), the
    /// sources, and the feedback control information.
    Feedback {
        payload_specific: bool,
        format: u32,
        sender: u32,
        media: u32,
        control: Vec<u8>,
    },
    /// Anything else (SDES, BYE, APP, XR): its packet type.
    Other(u8),
}

/// The packets of a compound RTCP packet (RFC 3550 §6.1) or of a reduced-size
/// one (RFC 5506); None when GStreamer's validation refuses it.
pub(crate) fn parse_rtcp(datagram: &[u8]) -> Option<Vec<RtcpPacket>> {
    let mut buffer = gst::Buffer::from_slice(datagram.to_vec());
    let buffer = buffer.make_mut();
    // SAFETY: `buffer` is a valid buffer we own; validation only reads it.
    if unsafe { ffi::gst_rtcp_buffer_validate_reduced(buffer.as_mut_ptr()) } == 0 {
        return None;
    }
    // SAFETY: an all-zero GstRTCPBuffer is GST_RTCP_BUFFER_INIT.
    let mut rtcp: ffi::GstRTCPBuffer = unsafe { std::mem::zeroed() };
    // SAFETY: `buffer` is a writable buffer we own for the whole call; it is
    // mapped for reading and unmapped below on every path.
    let mapped =
        unsafe { ffi::gst_rtcp_buffer_map(buffer.as_mut_ptr(), gst::ffi::GST_MAP_READ, &mut rtcp) };
    if mapped == 0 {
        return None;
    }
    let mut packets = Vec::new();
    // SAFETY: an all-zero GstRTCPPacket is an unpositioned packet, which
    // get_first_packet positions.
    let mut packet: ffi::GstRTCPPacket = unsafe { std::mem::zeroed() };
    // SAFETY: `rtcp` is mapped; `packet` is ours.
    let mut more = unsafe { ffi::gst_rtcp_buffer_get_first_packet(&mut rtcp, &mut packet) } != 0;
    while more {
        // SAFETY: `packet` was positioned on a valid packet of `rtcp`, which
        // stays mapped.
        packets.push(unsafe { read_packet(&mut packet) });
        // SAFETY: as above.
        more = unsafe { ffi::gst_rtcp_packet_move_to_next(&mut packet) } != 0;
    }
    // SAFETY: `rtcp` was mapped above.
    unsafe { ffi::gst_rtcp_buffer_unmap(&mut rtcp) };
    Some(packets)
}

/// # Safety
/// `packet` is positioned on a packet of a mapped, validated RTCP buffer.
unsafe fn read_packet(packet: &mut ffi::GstRTCPPacket) -> RtcpPacket {
    // SAFETY: the function's contract.
    let packet_type = unsafe { ffi::gst_rtcp_packet_get_type(packet) };
    match packet_type {
        ffi::GST_RTCP_TYPE_SR | ffi::GST_RTCP_TYPE_RR => {
            let mut reporter = 0;
            if packet_type == ffi::GST_RTCP_TYPE_SR {
                let (mut ntp, mut rtp, mut count, mut octets) = (0, 0, 0, 0);
                // SAFETY: an SR packet; every out-pointer is a local.
                unsafe {
                    ffi::gst_rtcp_packet_sr_get_sender_info(
                        packet,
                        &mut reporter,
                        &mut ntp,
                        &mut rtp,
                        &mut count,
                        &mut octets,
                    )
                };
            } else {
                // SAFETY: an RR packet.
                reporter = unsafe { ffi::gst_rtcp_packet_rr_get_ssrc(packet) };
            }
            // SAFETY: an SR or RR packet.
            let count = unsafe { ffi::gst_rtcp_packet_get_rb_count(packet) };
            let blocks = (0..count)
                .map(|nth| {
                    let mut block = ReportBlock {
                        ssrc: 0,
                        fraction_lost: 0,
                        packets_lost: 0,
                        highest_sequence: 0,
                        jitter: 0,
                        last_sender_report: 0,
                        delay_since_last_sender_report: 0,
                    };
                    // SAFETY: nth is below the packet's block count; every
                    // out-pointer is a field of a local.
                    unsafe {
                        ffi::gst_rtcp_packet_get_rb(
                            packet,
                            nth,
                            &mut block.ssrc,
                            &mut block.fraction_lost,
                            &mut block.packets_lost,
                            &mut block.highest_sequence,
                            &mut block.jitter,
                            &mut block.last_sender_report,
                            &mut block.delay_since_last_sender_report,
                        )
                    };
                    block
                })
                .collect();
            RtcpPacket::Report { reporter, blocks }
        }
        ffi::GST_RTCP_TYPE_RTPFB | ffi::GST_RTCP_TYPE_PSFB => {
            // SAFETY: a feedback packet, for all four calls.
            let (format, sender, media, length, fci) = unsafe {
                (
                    ffi::gst_rtcp_packet_fb_get_type(packet),
                    ffi::gst_rtcp_packet_fb_get_sender_ssrc(packet),
                    ffi::gst_rtcp_packet_fb_get_media_ssrc(packet),
                    ffi::gst_rtcp_packet_fb_get_fci_length(packet),
                    ffi::gst_rtcp_packet_fb_get_fci(packet),
                )
            };
            let control = if fci.is_null() {
                Vec::new()
            } else {
                // SAFETY: GStreamer returns the FCI's start inside the mapped
                // buffer and its length in 32-bit words, both checked against
                // the packet's length by validation.
                unsafe { std::slice::from_raw_parts(fci, usize::from(length) * 4) }.to_vec()
            };
            RtcpPacket::Feedback {
                payload_specific: packet_type == ffi::GST_RTCP_TYPE_PSFB,
                format: u32::try_from(format).unwrap_or(u32::MAX),
                sender,
                media,
                control,
            }
        }
        other => RtcpPacket::Other(u8::try_from(other).unwrap_or(0)),
    }
}

/// What a sender report says of the stream (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SenderInfo {
    pub ssrc: u32,
    pub ntp_time: u64,
    pub rtp_time: u32,
    pub packets: u32,
    pub octets: u32,
}

/// A compound RTCP packet of a sender report without report blocks and an
/// SDES packet with the source's CNAME, as RFC 3550 §6.1 requires.
pub(crate) fn sender_report(info: SenderInfo, cname: &str) -> Option<Vec<u8>> {
    let cname = cname.as_bytes();
    let cname_length = u8::try_from(cname.len()).ok()?;
    // SAFETY: returns a new buffer we own (or null, checked).
    let raw = unsafe { ffi::gst_rtcp_buffer_new(1500) };
    if raw.is_null() {
        return None;
    }
    // SAFETY: `raw` is a new buffer whose one reference passes to `buffer`.
    let mut buffer: gst::Buffer = unsafe { from_glib_full(raw) };
    // SAFETY: an all-zero GstRTCPBuffer is GST_RTCP_BUFFER_INIT.
    let mut rtcp: ffi::GstRTCPBuffer = unsafe { std::mem::zeroed() };
    let buffer_mut = buffer.get_mut()?;
    // SAFETY: `buffer` is ours and writable; unmapped below on every path.
    let mapped = unsafe {
        ffi::gst_rtcp_buffer_map(
            buffer_mut.as_mut_ptr(),
            gst::ffi::GST_MAP_READWRITE,
            &mut rtcp,
        )
    };
    if mapped == 0 {
        return None;
    }
    // SAFETY: an all-zero GstRTCPPacket, which add_packet positions.
    let mut packet: ffi::GstRTCPPacket = unsafe { std::mem::zeroed() };
    // SAFETY: `rtcp` is mapped for writing; the packets added fit in its 1500
    // bytes (an SR is 28 bytes, an SDES with a CNAME under 255 bytes at most
    // 268), and each call is made on the packet just added.
    let written = unsafe {
        ffi::gst_rtcp_buffer_add_packet(&mut rtcp, ffi::GST_RTCP_TYPE_SR, &mut packet) != 0
            && {
                ffi::gst_rtcp_packet_sr_set_sender_info(
                    &mut packet,
                    info.ssrc,
                    info.ntp_time,
                    info.rtp_time,
                    info.packets,
                    info.octets,
                );
                ffi::gst_rtcp_buffer_add_packet(&mut rtcp, ffi::GST_RTCP_TYPE_SDES, &mut packet)
                    != 0
            }
            && ffi::gst_rtcp_packet_sdes_add_item(&mut packet, info.ssrc) != 0
            && ffi::gst_rtcp_packet_sdes_add_entry(
                &mut packet,
                ffi::GST_RTCP_SDES_CNAME,
                cname_length,
                cname.as_ptr(),
            ) != 0
    };
    // SAFETY: `rtcp` was mapped above; unmapping sets the buffer's size to
    // the packets written.
    unsafe { ffi::gst_rtcp_buffer_unmap(&mut rtcp) };
    if !written {
        return None;
    }
    let map = buffer.map_readable().ok()?;
    Some(map.as_slice().to_vec())
}
