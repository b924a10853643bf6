//! A vision transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words", arXiv:2010.11929)
//! for MNIST: cut the image into `p × p` patches, project each linearly to `d_model`, run the encoder
//! over the `rows × cols` grid of patches, mean-pool, classify. Positions are the encoder's: `rope2d`
//! rotates by the patch's `(row, col)`, `rope` by its flattened index `row · cols + col`, `learned`
//! adds a trained vector per patch index, `none` leaves the patches unordered.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use kiln_data::mnist::{Mnist, MnistDataConfig};
use kiln_layers::{TokenLayout, Transformer, TransformerConfig};
use kiln_task::Context;
use kiln_task::{EpochSampler, Metrics, Split, StepOutput, Task};
use serde::{Deserialize, Serialize};

use crate::embedding::check_positions_cover;
use crate::{accuracy_counts, cross_entropy};

/// `[model] kind = "vit"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VitConfig {
    /// Side of a square patch in pixels; must divide the image side.
    #[serde(default = "default_patch")]
    pub patch_size: usize,
    /// The encoder stack (`[model.encoder]`).
    pub encoder: TransformerConfig,
}

fn default_patch() -> usize {
    4
}

/// Patch embedding, encoder, mean pooling, head.
#[derive(Module, Debug)]
pub struct Vit {
    /// `p² → d_model` patch projection.
    pub patch: kiln_layers::Linear,
    /// The encoder.
    pub encoder: Transformer,
    /// Classification head.
    pub head: Linear,
    /// Patch side.
    pub patch_size: usize,
}

impl VitConfig {
    /// Build for `classes` classes.
    pub fn init(&self, classes: usize, device: &Device) -> Vit {
        Vit {
            patch: kiln_layers::Linear::new(self.patch_size * self.patch_size, self.encoder.d_model, true, device),
            encoder: self.encoder.init(device),
            head: LinearConfig::new(self.encoder.d_model, classes).init(device),
            patch_size: self.patch_size,
        }
    }
}

impl Vit {
    /// Class logits.
    ///
    /// # Shapes
    ///
    /// - `images`: `[b, height, width]` in `[0, 1]` → `[b, classes]`
    pub fn forward(&self, images: Tensor<3>) -> Tensor<2> {
        self.head.forward(self.features(images))
    }

    /// The mean-pooled encoder output the head reads (a feature space for Fréchet distances).
    ///
    /// # Shapes
    ///
    /// - `images`: `[b, height, width]` in `[0, 1]` → `[b, d_model]`
    pub fn features(&self, images: Tensor<3>) -> Tensor<2> {
        let [b, height, width] = images.dims();
        let p = self.patch_size;
        let (rows, cols) = (height / p, width / p);
        let patches = images
            .reshape([b, rows, p, cols, p])
            .swap_dims(2, 3) // [b, rows, cols, p, p]
            .reshape([b, rows * cols, p * p]);
        let h = self.encoder.forward(self.patch.forward(patches), None, TokenLayout::Grid { rows, cols });
        let d = h.dims()[2];
        h.mean_dim(1).reshape([b, d])
    }
}

/// MNIST digit classification.
pub struct MnistTask {
    model: VitConfig,
    train: Mnist,
    valid: Mnist,
    test: Mnist,
}

/// An image batch.
pub struct ImageBatch {
    images: Tensor<3>,
    labels: Tensor<1, Int>,
}

fn image_batch(m: &Mnist, idx: &[usize], device: &Device) -> ImageBatch {
    let pixels: Vec<f32> = idx.iter().flat_map(|&i| m.image(i)).collect();
    let labels: Vec<i64> = idx.iter().map(|&i| m.labels[i] as i64).collect();
    ImageBatch {
        images: Tensor::<1>::from_floats(pixels.as_slice(), device).reshape([idx.len(), m.rows, m.cols]),
        labels: Tensor::<1, Int>::from_ints(TensorData::new(labels, [idx.len()]), device),
    }
}

impl MnistTask {
    /// Read the IDX files (`dir` already resolved) and split off validation images.
    pub fn new(model: VitConfig, data: &MnistDataConfig) -> kiln_task::Result<Self> {
        model.encoder.validate().context("model.encoder")?;
        let (all, test) = data.read_train_and_test()?;
        kiln_task::ensure!(
            model.patch_size > 0 && all.rows % model.patch_size == 0 && all.cols % model.patch_size == 0,
            "model.patch_size ({}) must divide the image size {}x{}",
            model.patch_size,
            all.rows,
            all.cols
        );
        let (rows, cols) = (all.rows / model.patch_size, all.cols / model.patch_size);
        check_positions_cover(
            "model.encoder",
            &model.encoder,
            rows * cols,
            &format!(
                "model.patch_size = {} on {}x{} images ({rows}x{cols} patches)",
                model.patch_size, all.rows, all.cols
            ),
        )?;
        let (train, valid) = data.split(&all)?;
        Ok(Self { model, train, valid, test })
    }
}

impl Task for MnistTask {
    type Model = Vit;
    type Batch = ImageBatch;

    fn describe(&self) -> String {
        format!(
            "MNIST vision transformer ({} train / {} valid / {} test images, {}x{} patches of {} px)",
            self.train.len(),
            self.valid.len(),
            self.test.len(),
            self.train.rows / self.model.patch_size,
            self.train.cols / self.model.patch_size,
            self.model.patch_size
        )
    }

    fn build_model(&self, device: &Device) -> kiln_task::Result<Vit> {
        Ok(self.model.init(10, device))
    }

    fn train_len(&self) -> Option<usize> {
        Some(self.train.len())
    }

    fn train_batch(&self, step: usize, batch_size: usize, seed: u64, device: &Device) -> ImageBatch {
        image_batch(&self.train, &EpochSampler::new(self.train.len(), batch_size, seed).batch(step), device)
    }

    fn step(&self, model: &Vit, batch: ImageBatch) -> StepOutput {
        let items = batch.labels.dims()[0];
        StepOutput { loss: cross_entropy(model.forward(batch.images), batch.labels), items }
    }

    fn evaluate(&self, model: &Vit, split: Split, device: &Device) -> kiln_task::Result<Metrics> {
        let data = match split {
            Split::Valid => &self.valid,
            Split::Test => &self.test,
        };
        let (mut correct, mut loss_sum) = (0, 0.0);
        let all: Vec<usize> = (0..data.len()).collect();
        for idx in all.chunks(500) {
            let batch = image_batch(data, idx, device);
            let logits = model.forward(batch.images);
            let loss: f32 = cross_entropy(logits.clone(), batch.labels.clone()).into_scalar();
            correct += accuracy_counts(logits, batch.labels).0;
            loss_sum += loss as f64 * idx.len() as f64;
        }
        Ok(vec![("accuracy".into(), correct as f64 / data.len() as f64), ("loss".into(), loss_sum / data.len() as f64)])
    }
}
