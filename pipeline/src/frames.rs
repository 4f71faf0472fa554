//! Frames as the run stacks them.

use polars::prelude::DataFrame;

use crate::error::{Error, Result};

/// The frames one after another, as one frame of their chunks: no row is
/// copied (a layer file's encoder and gold's grouping take the chunks as
/// they are). No frames give an empty frame without columns.
pub(crate) fn concat_frames(frames: Vec<DataFrame>) -> Result<DataFrame> {
    let mut frames = frames.into_iter();
    let Some(mut all) = frames.next() else {
        return Ok(DataFrame::empty());
    };
    for frame in frames {
        all.vstack_mut_owned(frame).map_err(Error::polars("concatenating frames"))?;
    }
    Ok(all)
}
