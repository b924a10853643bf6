//! Data parallelism over several devices (`[device] devices = [...]`), with burn-train's own
//! multi-device step ([`MultiDevicesTrainStep`], what its `Learner` runs for
//! `ExecutionStrategy::MultiDevice`): one worker thread per device forks the model onto its device,
//! runs a micro-batch forward and backward there, and sends back the gradients; the trainer moves
//! them to the first device, sums them, and steps the optimizer there (burn-train's
//! `OptimMainDevice`).
//!
//! As in PyTorch's DDP, `batch_size` is per device: a step on `k` devices with `grad_accum = a`
//! consumes the `a × k` micro-batches that one device with `grad_accum = a × k` would, in the same
//! order, and averages their losses the same way, so the two give the same training up to float
//! rounding (tested). Kiln's own loop (exact resume, clipping, checkpoints) stays in charge; only the
//! per-device forward and backward go through burn-train.

use std::sync::Arc;

use burn::data::dataloader::{DataLoaderIterator, Progress};
use burn::data::dataset::DatasetError;
use burn::module::{Module, ModuleDisplay};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use burn::tensor::ExecutionError;
use burn_train::train::{MultiDeviceStepError, MultiDevicesTrainStep};
use burn_train::{InferenceStep, ItemLazy, TrainOutput, TrainStep};
use kiln_task::Task;

use crate::watchdog::{self, one_line};

/// The model as burn-train's workers see it: a module whose training step runs the job it is sent.
#[derive(Module, Debug)]
pub struct Replica<M: Module + ModuleDisplay> {
    /// The task's model (forked onto the worker's device by burn-train).
    pub model: M,
}

/// One micro-batch's work on a worker: build the batch on the worker's device, run the task's
/// loss, backward.
pub struct Job<M>(Box<JobFn<M>>);

type JobFn<M> = dyn FnOnce(&M) -> TrainOutput<MicroLoss> + Send;

/// The (scaled) loss of one micro-batch, and the micro-batch's place in the round.
#[derive(Debug, Clone, Copy)]
pub struct MicroLoss {
    /// Index of the micro-batch within the round (= its device's index).
    pub index: usize,
    /// The scaled loss.
    pub value: f64,
}

impl ItemLazy for MicroLoss {
    fn sync(self) -> Result<Self, ExecutionError> {
        Ok(self)
    }
}

impl<M: Module + ModuleDisplay + 'static> TrainStep for Replica<M> {
    type Input = Job<M>;
    type Output = MicroLoss;

    fn step(&self, job: Job<M>) -> TrainOutput<MicroLoss> {
        (job.0)(&self.model)
    }
}

/// Required of a burn-train model; the trainer evaluates on one device itself, so this only runs a
/// job without keeping its gradients.
impl<M: Module + ModuleDisplay + 'static> InferenceStep for Replica<M> {
    type Input = Job<M>;
    type Output = MicroLoss;

    fn step(&self, job: Job<M>) -> MicroLoss {
        (job.0)(&self.model).item
    }
}

/// A data-loader iterator over one job: what [`MultiDevicesTrainStep::step`] takes per device.
struct OneJob<M>(Option<Job<M>>);

impl<M> Iterator for OneJob<M> {
    type Item = Result<Job<M>, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.take().map(Ok)
    }
}

impl<M> DataLoaderIterator<Job<M>> for OneJob<M> {
    fn progress(&self) -> Progress {
        Progress::new(usize::from(self.0.is_none()), 1, None)
    }
}

/// The devices of a data-parallel run and burn-train's workers on them.
pub struct DataParallel<T: Task> {
    devices: Vec<Device>,
    /// What the config calls each device (`[device] devices`), for errors.
    names: Vec<String>,
    step: MultiDevicesTrainStep<Replica<T::Model>>,
}

/// Which micro-batches a round runs, and how.
#[derive(Debug, Clone, Copy)]
pub struct RoundSpec<'a> {
    /// Index of the first micro-batch (device 0's); device `i` runs `first + i`.
    pub first: usize,
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// The data seed (`train.seed`): batches are a function of it and the index.
    pub data_seed: u64,
    /// Each device's generator seed (dropout), one per device.
    pub seeds: &'a [u64],
    /// Each micro-batch's loss is divided by this (micro-batches per optimizer step).
    pub divisor: f64,
}

/// The outcome of a round: per micro-batch, its divided loss; and the summed gradients on the main
/// device.
pub struct Round {
    /// Scaled losses, in micro-batch order.
    pub losses: Vec<f64>,
    /// Sum of the micro-batches' gradients, on the main device.
    pub grads: GradientsParams,
}

impl<T: Task + Send + Sync + 'static> DataParallel<T> {
    /// Workers on `devices` (autodiff devices; the first is the main one), called `names` in
    /// errors (the config's names: `flex`, `remote:ws://host:port`, ...).
    pub fn new(devices: Vec<Device>, names: Vec<String>) -> Self {
        assert_eq!(devices.len(), names.len(), "one name per device");
        let step = MultiDevicesTrainStep::new(&devices);
        Self { devices, names, step }
    }

    /// Number of devices.
    pub fn replicas(&self) -> usize {
        self.devices.len()
    }

    /// Run micro-batches `first .. first + k` (k = number of devices) at once, micro-batch
    /// `first + i` on device `i`, each loss divided by `divisor`; device `i` is seeded with
    /// `seeds[i]` first (its dropout). Gradients summed on the main device, for `model`'s parameters.
    ///
    /// # Errors
    ///
    /// A worker failed (a panic, or a remote worker's connection lost): one line per failed
    /// device, naming it as the config does, with the cause.
    pub fn round(&self, task: &Arc<T>, model: &T::Model, round: &RoundSpec<'_>) -> anyhow::Result<Round> {
        let RoundSpec { first, batch_size, data_seed, seeds, divisor } = *round;
        let mut loaders: Vec<Box<dyn DataLoaderIterator<Job<T::Model>>>> = Vec::with_capacity(self.replicas());
        for (i, device) in self.devices.iter().enumerate() {
            let (task, device, seed, name) = (Arc::clone(task), device.clone(), seeds[i], self.names[i].clone());
            // A failed read (a remote worker's connection lost) panics quietly; burn-train catches
            // the panic and `failure` names the device.
            let job = Job(Box::new(move |model: &T::Model| {
                watchdog::caught(|| {
                    device.seed(seed);
                    let batch = task.train_batch(first + i, batch_size, data_seed, &device);
                    let loss = task.step(model, batch).loss.div_scalar(divisor);
                    let value = match loss.clone().try_into_scalar::<f32>() {
                        Ok(v) => f64::from(v),
                        Err(e) => panic!("reading its loss failed: {}", one_line(&e.to_string())),
                    };
                    let out = TrainOutput::new(model, loss.backward(), MicroLoss { index: i, value });
                    watchdog::answered(&name);
                    out
                })
            }));
            loaders.push(Box::new(OneJob(Some(job))));
        }
        let (outputs, _) =
            self.step.step(&mut loaders, &Replica { model: model.clone() }).map_err(|e| self.failure(e))?;
        anyhow::ensure!(
            outputs.len() == self.replicas(),
            "data-parallel step: {} of {} workers answered",
            outputs.len(),
            self.replicas()
        );
        // Workers answer in the order they finish; sum in micro-batch order, as one device would.
        let mut outputs: Vec<_> = outputs.into_iter().map(|o| o.output).collect();
        outputs.sort_by_key(|o| o.item.index);
        let mut accumulator = GradientsAccumulator::new();
        let mut losses = Vec::with_capacity(outputs.len());
        for out in outputs {
            losses.push(out.item.value);
            accumulator.accumulate(model, out.grads.to_device(&self.devices[0], model));
        }
        Ok(Round { losses, grads: accumulator.grads() })
    }

    /// The error of a failed step, with each failed device named as in the config.
    fn failure(&self, e: MultiDeviceStepError) -> anyhow::Error {
        let MultiDeviceStepError::Workers(failures) = e else {
            return anyhow::anyhow!("data-parallel step: {e}");
        };
        let lines: Vec<String> = failures
            .iter()
            .map(|f| {
                let name = self.names.get(f.device_id).map_or("?", String::as_str);
                format!("device {} ({name}) failed: {}", f.device_id, one_line(&f.message))
            })
            .collect();
        anyhow::anyhow!("data-parallel step: {}", lines.join("; "))
    }
}
