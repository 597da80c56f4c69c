//! The global allocator (installed by main.rs, used by every phase): mimalloc, called without
//! the alignment argument whenever mimalloc's own block alignment already satisfies the layout.
//!
//! Why: the `mimalloc` crate passes every allocation to `mi_malloc_aligned` with Rust's
//! alignment. mimalloc 3 serves that from its fast path only for blocks up to 1 KiB with a free
//! slot at hand; otherwise it asks whether the size class guarantees the alignment, and for a
//! size that is not a power of two and an alignment other than 16 (a `Vec<u8>` has 1) it says
//! no and over-allocates, then marks the page as holding aligned blocks, which `mi_free` has to
//! undo. Every header buffer and body chunk of a request takes that path. Yet each mimalloc
//! block of 16 bytes or more starts on a 16-byte boundary and smaller blocks on an 8-byte one
//! (mimalloc's `MI_MAX_ALIGN_SIZE` guarantee, asserted in its `alloc.c`), so an alignment of at
//! most 16 that does not exceed the size needs nothing more than plain `mi_malloc`.

use std::alloc::{GlobalAlloc, Layout};

/// The alignment every mimalloc block of at least this size has (`MI_MAX_ALIGN_SIZE`).
const MI_MAX_ALIGN: usize = 16;

/// mimalloc as the global allocator; see the module documentation.
pub struct Allocator;

/// True when a plain mimalloc block of `size` bytes is aligned to `align`: blocks smaller than
/// 16 bytes are 8-byte aligned, larger ones 16-byte aligned, and `align <= size` covers both.
fn plain_block_fits(size: usize, align: usize) -> bool {
    align <= MI_MAX_ALIGN && align <= size
}

// SAFETY: every pointer comes from mimalloc and goes back to it; `plain_block_fits` only lets
// through layouts whose alignment mimalloc gives every block of that size, and the others go to
// the aligned entry points through `mimalloc::MiMalloc`. `mi_free` and `mi_realloc` accept
// blocks from either kind of call.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if plain_block_fits(layout.size(), layout.align()) {
            // SAFETY: see the impl.
            unsafe { libmimalloc_sys::mi_malloc(layout.size()).cast() }
        } else {
            // SAFETY: the caller's promises about `layout` are passed on unchanged.
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if plain_block_fits(layout.size(), layout.align()) {
            // SAFETY: see the impl.
            unsafe { libmimalloc_sys::mi_zalloc(layout.size()).cast() }
        } else {
            // SAFETY: the caller's promises about `layout` are passed on unchanged.
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, hence from mimalloc.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if plain_block_fits(new_size, layout.align()) {
            // SAFETY: `ptr` came from mimalloc; the block it returns is aligned (see the impl).
            unsafe { libmimalloc_sys::mi_realloc(ptr.cast(), new_size).cast() }
        } else {
            // SAFETY: the caller's promises are passed on unchanged.
            unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).expect("layout")
    }

    /// Every size up to 70 KiB in steps that cross mimalloc's size classes, with every
    /// alignment from 1 to 4 KiB: the blocks are aligned, writable to the end, and survive
    /// growing and shrinking with their contents intact.
    #[test]
    fn blocks_are_aligned_and_keep_their_contents() {
        let a = Allocator;
        let mut sizes: Vec<usize> = (1..=64).collect();
        let mut s = 65;
        while s < 70_000 {
            sizes.push(s);
            s += s / 7 + 1;
        }
        for &size in &sizes {
            for shift in 0..=12 {
                let align = 1usize << shift;
                let l = layout(size, align);
                // SAFETY: non-zero sizes; every block is used within its size and freed once,
                // with the layout it has.
                unsafe {
                    let z = a.alloc_zeroed(l);
                    assert_eq!(z as usize % align, 0, "zeroed size {size} align {align}");
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|b| *b == 0));
                    a.dealloc(z, l);
                    for new_size in [size / 2 + 1, size * 3 + 5] {
                        let p = a.alloc(l);
                        assert!(!p.is_null());
                        assert_eq!(p as usize % align, 0, "size {size} align {align}");
                        std::ptr::write_bytes(p, 0xa5, size);
                        let q = a.realloc(p, l, new_size);
                        assert_eq!(q as usize % align, 0, "realloc {size} → {new_size} align {align}");
                        let kept = size.min(new_size);
                        assert!(std::slice::from_raw_parts(q, kept).iter().all(|b| *b == 0xa5));
                        let back = a.realloc(q, layout(new_size, align), size);
                        assert_eq!(back as usize % align, 0, "realloc back to {size} align {align}");
                        assert!(std::slice::from_raw_parts(back, kept).iter().all(|b| *b == 0xa5));
                        a.dealloc(back, l);
                    }
                }
            }
        }
    }

    #[test]
    fn plain_blocks_only_where_mimalloc_aligns_them() {
        assert!(plain_block_fits(1, 1));
        assert!(plain_block_fits(8, 8));
        assert!(plain_block_fits(16, 16));
        assert!(plain_block_fits(1500, 1));
        assert!(!plain_block_fits(8, 16));
        assert!(!plain_block_fits(64, 32));
        assert!(!plain_block_fits(0, 1));
    }
}
