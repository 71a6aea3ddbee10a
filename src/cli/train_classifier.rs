//! `train-classifier`: the Fashion-MNIST classifier that `eval` judges with.

use super::*;

#[derive(Args, Debug)]
pub struct TrainClassifierArgs {
    #[arg(long, default_value = data::FASHION_MNIST_DIR)]
    pub fashion_mnist_dir: PathBuf,
    #[arg(long, default_value_t = 4)]
    pub epochs: usize,
    /// Where to write the classifier checkpoint.
    #[arg(long, default_value = "runs/classifier.dlab")]
    pub out: PathBuf,
}

pub(super) fn train_classifier(args: &TrainClassifierArgs) -> anyhow::Result<()> {
    let train = Dataset::fashion_mnist(&args.fashion_mnist_dir, Split::Train)?;
    let test = Dataset::fashion_mnist(&args.fashion_mnist_dir, Split::Test)?;
    let device = Device::flex();
    let config = ClassifierConfig::new();
    let mut last_accuracy = 0.0;
    let started = std::time::Instant::now();
    let model =
        diffusion_lab::train::classifier::train_classifier(&config, &train, &test, args.epochs, &device, |report| {
            last_accuracy = report.test_accuracy;
            eprintln!(
                "epoch {}: mean loss {:.4}, test accuracy {:.2} % ({:.0} s)",
                report.epoch,
                report.mean_loss,
                100.0 * report.test_accuracy,
                started.elapsed().as_secs_f64()
            );
        })?;
    diffusion_lab::train::classifier::classifier_checkpoint(&model, &config, last_accuracy)?.write(&args.out)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
