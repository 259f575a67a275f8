//! The segments before the scan: frame, Huffman and quantization tables, restart interval,
//! JFIF/EXIF/Adobe markers, and the scan header, read into a [`BaselineJpeg`] (or refused, for
//! the general decoder to handle).

use super::huffman::{HuffmanTable, ZIGZAG_TO_NATURAL};
use super::{BaselineJpeg, Block, Component};

fn be16(bytes: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]) as usize)
}

/// The frame header: size and components.
struct Frame {
    width: usize,
    height: usize,
    components: Vec<Component>,
}

/// What the segments before the first scan have said so far.
#[derive(Default)]
struct Headers<'a> {
    /// Quantization tables by slot, natural order.
    quant: [Option<Block>; 4],
    /// DC and AC Huffman tables by slot, as indexes into `tables`.
    dc: [Option<usize>; 4],
    ac: [Option<usize>; 4],
    tables: Vec<HuffmanTable>,
    frame: Option<Frame>,
    restart_interval: usize,
    exif: Option<&'a [u8]>,
    jfif: bool,
    adobe_transform: Option<u8>,
}

impl<'a> Headers<'a> {
    /// `SOF0`/`SOF1`: 8-bit samples, one or three components.
    fn read_frame(&mut self, segment: &[u8]) -> Option<()> {
        if self.frame.is_some() || segment.len() < 6 || segment[0] != 8 {
            return None;
        }
        let (height, width, count) = (be16(segment, 1)?, be16(segment, 3)?, segment[5] as usize);
        if width == 0 || height == 0 || !(count == 1 || count == 3) || segment.len() < 6 + 3 * count {
            return None;
        }
        let components = segment[6..6 + 3 * count]
            .chunks_exact(3)
            .map(|c| {
                let (horizontal, vertical) = ((c[1] >> 4) as usize, (c[1] & 15) as usize);
                let valid = (1..=4).contains(&horizontal) && (1..=4).contains(&vertical) && c[2] < 4;
                valid.then_some(Component {
                    id: c[0],
                    horizontal,
                    vertical,
                    quant_table: c[2] as usize,
                    dc_table: 0,
                    ac_table: 0,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        self.frame = Some(Frame { width, height, components });
        Some(())
    }

    /// `DHT`: one or more Huffman tables.
    fn read_huffman_tables(&mut self, segment: &[u8]) -> Option<()> {
        let mut at = 0;
        while at < segment.len() {
            let (class, slot) = (segment[at] >> 4, (segment[at] & 15) as usize);
            let counts: &[u8; 16] = segment.get(at + 1..at + 17)?.try_into().ok()?;
            let total: usize = counts.iter().map(|&c| c as usize).sum();
            let symbols = segment.get(at + 17..at + 17 + total)?;
            if slot > 3 || class > 1 {
                return None;
            }
            self.tables.push(HuffmanTable::new(counts, symbols)?);
            let slots = if class == 0 { &mut self.dc } else { &mut self.ac };
            slots[slot] = Some(self.tables.len() - 1);
            at += 17 + total;
        }
        Some(())
    }

    /// `DQT`: one or more quantization tables, 8- or 16-bit.
    fn read_quant_tables(&mut self, segment: &[u8]) -> Option<()> {
        let mut at = 0;
        while at < segment.len() {
            let (precision, slot) = (segment[at] >> 4, (segment[at] & 15) as usize);
            let size = if precision == 0 { 64 } else { 128 };
            let values = segment.get(at + 1..at + 1 + size)?;
            if slot > 3 || precision > 1 {
                return None;
            }
            let mut table = [0i16; 64];
            for k in 0..64 {
                let value = if precision == 0 { values[k] as u16 } else { be16(values, 2 * k)? as u16 };
                // libjpeg keeps quantizers in 16-bit signed multipliers.
                table[ZIGZAG_TO_NATURAL[k]] = value as i16;
            }
            self.quant[slot] = Some(table);
            at += 1 + size;
        }
        Some(())
    }

    /// Whether three components are RGB rather than YCbCr, by libjpeg's rules: JFIF means
    /// YCbCr, else an Adobe marker's transform flag decides, else component ids `R`, `G`, `B`.
    fn is_rgb(&self, components: &[Component]) -> bool {
        match self.adobe_transform {
            _ if self.jfif => false,
            Some(transform) => transform == 0,
            None => components.iter().map(|c| c.id).eq(*b"RGB"),
        }
    }

    /// `SOS`: the scan must hold every component, all 64 coefficients, in one pass.
    fn start_scan(self, segment: &[u8], scan: &'a [u8]) -> Option<BaselineJpeg<'a>> {
        let Frame { width, height, components } = self.frame.as_ref()?;
        let (width, height) = (*width, *height);
        let count = *segment.first()? as usize;
        if count != components.len() || segment.len() < 4 + 2 * count {
            return None;
        }
        let spectral = (segment[1 + 2 * count], segment[2 + 2 * count], segment[3 + 2 * count]);
        if spectral != (0, 63, 0) || (count == 3 && self.is_rgb(components)) {
            return None;
        }
        // Components in scan order, with their tables.
        let mut ordered: Vec<Component> = Vec::with_capacity(count);
        let (mut dc_tables, mut ac_tables) = (Vec::new(), Vec::new());
        for pair in segment[1..1 + 2 * count].chunks_exact(2) {
            let (id, selectors) = (pair[0], pair[1]);
            if ordered.iter().any(|c| c.id == id) {
                return None;
            }
            let mut component = *components.iter().find(|c| c.id == id)?;
            component.dc_table = (selectors >> 4) as usize;
            component.ac_table = (selectors & 15) as usize;
            dc_tables.push(self.tables.get((*self.dc.get(component.dc_table)?)?)?.clone());
            ac_tables.push(self.tables.get((*self.ac.get(component.ac_table)?)?)?.clone());
            ordered.push(component);
        }
        // The first frame component is Y (or the only one).
        let luma_index = ordered.iter().position(|c| c.id == components[0].id)?;
        let luma = ordered[luma_index];
        let luma_quant = self.quant[luma.quant_table]?;
        let (mcus_per_row, mcu_rows) = if count == 1 {
            // A single-component scan is not interleaved: one block per MCU.
            ordered[0].horizontal = 1;
            ordered[0].vertical = 1;
            (width.div_ceil(8), height.div_ceil(8))
        } else {
            let h_max = ordered.iter().map(|c| c.horizontal).max()?;
            let v_max = ordered.iter().map(|c| c.vertical).max()?;
            let blocks_per_mcu: usize = ordered.iter().map(|c| c.horizontal * c.vertical).sum();
            // Y must have the full resolution for its plane to be the image.
            if luma.horizontal != h_max || luma.vertical != v_max || blocks_per_mcu > 10 {
                return None;
            }
            (width.div_ceil(8 * h_max), height.div_ceil(8 * v_max))
        };
        Some(BaselineJpeg {
            width,
            height,
            exif: self.exif,
            components: ordered,
            luma_index,
            luma_quant,
            dc_tables,
            ac_tables,
            restart_interval: self.restart_interval,
            mcus_per_row,
            mcu_rows,
            scan,
        })
    }
}

impl<'a> BaselineJpeg<'a> {
    /// Reads the headers up to the first scan. `None` when the file is not one this decoder
    /// handles (or its headers are broken: the general decoder then gives the error).
    pub(crate) fn parse(bytes: &'a [u8]) -> Option<BaselineJpeg<'a>> {
        if !bytes.starts_with(&[0xFF, 0xD8]) {
            return None;
        }
        let mut headers = Headers::default();
        let mut position = 2;
        loop {
            if *bytes.get(position)? != 0xFF {
                return None;
            }
            while *bytes.get(position)? == 0xFF {
                position += 1;
            }
            let marker = bytes[position];
            position += 1;
            if matches!(marker, 0x01 | 0xD0..=0xD9) {
                return None;
            }
            let length = be16(bytes, position)?;
            let segment = bytes.get(position + 2..position + length.checked_sub(2)? + 2)?;
            position += length;
            match marker {
                0xC0 | 0xC1 => headers.read_frame(segment)?,
                // Progressive, lossless, hierarchical and arithmetic-coded frames, and
                // arithmetic conditioning: the general decoder's.
                0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCC | 0xCD..=0xCF => return None,
                0xC4 => headers.read_huffman_tables(segment)?,
                0xDB => headers.read_quant_tables(segment)?,
                0xDD => headers.restart_interval = be16(segment, 0)?,
                0xE0 => headers.jfif |= segment.starts_with(b"JFIF\0"),
                0xE1 if headers.exif.is_none() && segment.starts_with(b"Exif\0\0") => {
                    headers.exif = Some(segment)
                }
                0xEE if segment.starts_with(b"Adobe") && segment.len() >= 12 => {
                    headers.adobe_transform = Some(segment[11])
                }
                0xDA => return headers.start_scan(segment, &bytes[position..]),
                _ => {}
            }
        }
    }
}
