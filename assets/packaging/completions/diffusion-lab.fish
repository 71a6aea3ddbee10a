# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_diffusion_lab_global_optspecs
    string join \n h/help V/version
end

function __fish_diffusion_lab_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_diffusion_lab_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_diffusion_lab_using_subcommand
    set -l cmd (__fish_diffusion_lab_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c diffusion-lab -n "__fish_diffusion_lab_needs_command" -s h -l help -d 'Print help'
complete -c diffusion-lab -n "__fish_diffusion_lab_needs_command" -s V -l version -d 'Print version'
complete -c diffusion-lab -n "__fish_diffusion_lab_needs_command" -f -a "schedule" -d 'Print every derived quantity of a noise schedule for every timestep t = 1..T'
complete -c diffusion-lab -n "__fish_diffusion_lab_needs_command" -f -a "train" -d 'Train the noise-prediction UNet on Fashion-MNIST or a folder of images (resumable)'
complete -c diffusion-lab -n "__fish_diffusion_lab_needs_command" -f -a "sample" -d 'Generate images with a trained model'
complete -c diffusion-lab -n "__fish_diffusion_lab_needs_command" -f -a "train-autoencoder" -d 'Train latent diffusion\'s autoencoder (reconstruction + perceptual + KL + PatchGAN; resumable)'
complete -c diffusion-lab -n "__fish_diffusion_lab_needs_command" -f -a "train-classifier" -d 'Train the Fashion-MNIST classifier that `eval` uses as its judge'
complete -c diffusion-lab -n "__fish_diffusion_lab_needs_command" -f -a "eval" -d 'Score a folder of samples: Fréchet distance of classifier features against the test set, and class accuracy'
complete -c diffusion-lab -n "__fish_diffusion_lab_needs_command" -f -a "bench" -d 'Time sampling through the engine, with and without streaming every step'
complete -c diffusion-lab -n "__fish_diffusion_lab_needs_command" -f -a "grid" -d 'An X/Y plot: one image per pair of values of two settings (e.g. guidance x steps), labelled, in one PNG'
complete -c diffusion-lab -n "__fish_diffusion_lab_needs_command" -f -a "interpolate" -d 'A strip of images between two seeds (x_T interpolated spherically) or two classes (τ_θ(y)), as PNG and GIF'
complete -c diffusion-lab -n "__fish_diffusion_lab_needs_command" -f -a "explain" -d 'One step of a run as a figure: the update with its numbers and every term as a picture'
complete -c diffusion-lab -n "__fish_diffusion_lab_needs_command" -f -a "decided" -d 'When is an image decided? Runs continued from their own x_t with fresh noise (DDPM\'s Figure 7, measured)'
complete -c diffusion-lab -n "__fish_diffusion_lab_needs_command" -f -a "lab2d" -d 'The 2-D lab: train a small network on points of the plane (a preset), run particles from x_T to the data with any sampler, and measure and draw them'
complete -c diffusion-lab -n "__fish_diffusion_lab_needs_command" -f -a "tour" -d 'The guided tour of the diffusion story: `--list` prints its steps, `--export DIR` writes it as a printable page (Markdown or HTML) with a picture per step made by the app\'s own code'
complete -c diffusion-lab -n "__fish_diffusion_lab_needs_command" -f -a "package-files" -d 'Write the files a desktop package installs beside the binary (man pages, shell completions, icons)'
complete -c diffusion-lab -n "__fish_diffusion_lab_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand schedule" -l kind -d 'How β_t grows: linear, cosine, quadratic (linear in sqrt β) or sigmoid' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand schedule" -l timesteps -d 'T, the number of diffusion timesteps of the schedule (1..=10000) [default: 1000]. Not the number of sampling steps, which is `sample --sampling-steps`' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand schedule" -l beta-start -d 'β_1 [default: the kind\'s usual value; 1e-4 for linear and sigmoid, 0.00085 for quadratic]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand schedule" -l beta-end -d 'β_T [default: the kind\'s usual value; 0.02 for linear and sigmoid, 0.012 for quadratic]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand schedule" -l format -d 'Output format' -r -f -a "csv\t''
json\t''"
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand schedule" -l recipes -d 'Instead of the schedule, how much each training recipe counts each noise level: p(λ)·w(λ) in ε-loss units (the density of the λ a training step draws times the weight on ||ε̂ - ε||² there), at λ from -20 to 10, as CSV with one column per recipe (each objective with its usual weighting, ε with min-SNR-5 and EDM (σ_data 0.5), flow with logit-normal t)'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand schedule" -s h -l help -d 'Print help'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train" -l data -d 'Training images: `fashion-mnist` (the Debian package\'s IDX files) or a folder of PNG/JPEG images (sub-folder names become class labels)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train" -l fashion-mnist-dir -d 'Where the Fashion-MNIST IDX files are' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train" -l image-size -d 'Image size for a folder of images (Fashion-MNIST is 28)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train" -l image-channels -d 'Image channels for a folder of images: 1 (gray) or 3 (RGB)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train" -l out -d 'Folder for the checkpoint, the loss log and the preview grids' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train" -l steps -d 'Total optimizer steps of the run' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train" -l batch-size -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train" -l learning-rate -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train" -l channels -d 'Feature channels per resolution level [default: 32,64,128 on pixels, 64,128 on latents]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train" -l autoencoder -d 'The autoencoder (a checkpoint from `train-autoencoder`) whose latents a --latent model learns' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train" -l checkpoint-every -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train" -l preview-every -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train" -l max-steps-now -d 'Stop after this many steps of this invocation (the run itself stays resumable)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train" -l seed -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train" -l export -d 'Also write the shippable model (EMA weights in f16) to this path at every checkpoint' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train" -l objective -d 'What the network predicts: eps (the noise), x0 (the clean image), v (α ε - σ x₀) or flow (the velocity ε - x₀ of the straight path). A resumed run keeps its own [default: eps]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train" -l weighting -d 'How much each noise level counts: plain (the target\'s own squared error), min-snr[:γ] (γ = 5), edm[:σ_data] (σ_data measured on the data), uniform-t or logit-normal[:mean,std] (flow matching\'s t). A resumed run keeps its own [default: uniform-t for flow, plain otherwise]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train" -l quality-every -d 'Score the model every K steps: samples from the same x_T each time, scored by the project\'s classifier (Fréchet distance, class accuracy, real data\'s at the same n, the nearest training image), written to quality.csv in --out. Fashion-MNIST only. 0: off' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train" -l quality-samples -d 'Samples per quality reading' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train" -l resume -d 'Continue from the checkpoint in --out (weights, optimizer, EMA and step)'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train" -l latent -d 'Train latent diffusion: the UNet works on the latents of --autoencoder'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train" -l captions -d 'Train a text model: τ_θ reads prompts. Captions come from a `.txt` file beside each image of a folder (cat.png -> cat.txt), or for Fashion-MNIST are made from each image\'s class and the brightness, size and texture measured from its pixels'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train" -s h -l help -d 'Print help'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l model -d 'A built-in model (`fashion`: pixel space, `latent`: the autoencoder\'s latent space, `fashion-text`: latent, conditioned on prompts) or a checkpoint file written by `train`' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l autoencoder -d 'The autoencoder that turns a latent model\'s latents into pixels [default: a built-in model\'s own; for a checkpoint file, the one it was trained with, as its header records]' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l device -d 'auto, cpu or wgpu' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l guide -d 'Autoguidance\'s weaker model: an earlier checkpoint of the same kind as --model [default: a built-in model\'s own earlier checkpoint; none for a checkpoint file]' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l n -d 'Number of images' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l class -d 'Generate this class (0..9 for Fashion-MNIST); without it and --all-classes, unconditional' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l prompt -d 'What a text model (`--model fashion-text`) draws, e.g. "dark ankle boot". Words it does not know are named, with the words it knows, and read as <unk>' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l negative-prompt -d 'What guidance steers away from, in place of the empty prompt: ε̂ = ε̂_neg + w (ε̂_prompt - ε̂_neg)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l guidance -d 'Guidance scale: w (0 = unconditional, 1 = conditional, more = stronger), or CFG++\'s λ in [0, 1] [default: the method\'s: cfg 1.5, rescale 7.5, apg 7.5, cfgpp 0.6, auto 2.25]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l guidance-interval -d 'Guide only at noise levels λ = ln(ᾱ / (1 - ᾱ)) from LO to HI, e.g. -3.4,2.5 (w = 1 elsewhere: Kynkäänniemi et al. 2024, guidance in a limited interval)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l guidance-method -d 'How guidance combines the predictions: cfg (Ho & Salimans 2022), rescale (CFG rescaled to the conditional prediction\'s std per image, Lin et al. 2024), apg (adaptive projected guidance on x̂_0, Sadat et al. 2024), cfgpp (CFG++: renoise with ε̂_Ø, λ in [0, 1]; ddim, euler-a, dpmpp-2m; Chung et al. 2024), auto (autoguidance: a weaker model of the same kind guides, Karras et al. 2024)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l guidance-rescale -d 'rescale: φ in [0, 1], the share of the rescaled prediction' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l apg-eta -d 'apg: η in [0, 1], the weight of the update\'s part parallel to x̂_y (0: only the orthogonal part)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l apg-momentum -d 'apg: the momentum β in (-1, 1) of the update\'s running average (negative: away from the last steps\')' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l apg-threshold -d 'apg: the largest norm r of the update per image (0: no limit)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l sampler -d 'ddpm (every timestep), ddim, euler, euler-a, heun, dpmpp-2m or dpmpp-2m-sde [default: dpmpp-2m, with karras spacing: the measured best at 20 steps, see assets/models/README.md]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l sampling-steps -d 'Sampling steps (network evaluations: as many, Heun\'s about twice; DDPM takes every timestep)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l spacing -d 'Where the steps sit: trailing (from pure noise), leading, linspace, or karras (σ spacing) [default: karras for the default sampler, trailing for one given with --sampler]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l eta -d 'DDIM\'s η in [0, 1]: 0 deterministic, 1 as noisy as DDPM' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l kind -d 'How β_t grows: linear, cosine, quadratic (linear in sqrt β) or sigmoid' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l timesteps -d 'T, the number of diffusion timesteps of the schedule (1..=10000) [default: 1000]. Not the number of sampling steps, which is `sample --sampling-steps`' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l beta-start -d 'β_1 [default: the kind\'s usual value; 1e-4 for linear and sigmoid, 0.00085 for quadratic]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l beta-end -d 'β_T [default: the kind\'s usual value; 0.02 for linear and sigmoid, 0.012 for quadratic]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l seed -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l grid -d 'Write all images as one grid PNG' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l out-dir -d 'Write one PNG per image (the class is in the file name)' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l init-image -d 'Image-to-image (SDEdit): start from this picture (any size and format; resized to the model\'s), noised to --strength, instead of from pure noise' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l strength -d 'How far into the forward process the picture goes: 0 keeps it, 1 is a plain Generate' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l mask -d 'Inpainting: an image (any size; resized), white (> 50 %) where the model repaints; the rest of --init-image stays. Usually with --strength 1' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l resample -d 'RePaint\'s resampling for inpainting: each step taken this many times (1 = once)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l from -d 'Branch: continue the run this PNG\'s settings describe (one saved by diffusion-lab) from its step --at-step, with the settings given here changed (--class, --guidance, --guidance-interval, the sampler flags, --seed); the rest is the PNG\'s. Its whole batch continues' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l at-step -d 'The step of --from\'s run to continue from: 0 = its x_T, k = after its k-th step' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -l all-classes -d 'Cycle through every class, n / classes images each (one grid row per class)'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand sample" -s h -l help -d 'Print help'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train-autoencoder" -l data -d 'Training images: `fashion-mnist` (the Debian package\'s IDX files) or a folder of PNG/JPEG images (sub-folder names become class labels)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train-autoencoder" -l fashion-mnist-dir -d 'Where the Fashion-MNIST IDX files are' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train-autoencoder" -l image-size -d 'Image size for a folder of images (Fashion-MNIST is 28)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train-autoencoder" -l image-channels -d 'Image channels for a folder of images: 1 (gray) or 3 (RGB)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train-autoencoder" -l out -d 'Folder for the checkpoint, the loss log and the reconstruction previews' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train-autoencoder" -l steps -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train-autoencoder" -l batch-size -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train-autoencoder" -l adversarial-start -d 'Steps before the PatchGAN discriminator joins' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train-autoencoder" -l latent-channels -d 'Channels of the latent (its side is the image\'s / 4)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train-autoencoder" -l classifier -d 'The perceptual loss\'s classifier: `fashion` (built in) or a checkpoint from `train-classifier`' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train-autoencoder" -l checkpoint-every -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train-autoencoder" -l preview-every -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train-autoencoder" -l max-steps-now -d 'Stop after this many steps of this invocation (the run itself stays resumable)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train-autoencoder" -l export -d 'Also write the shippable autoencoder (f16, with its latent scale) here at every checkpoint' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train-autoencoder" -l resume -d 'Continue from the checkpoint in --out'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train-autoencoder" -s h -l help -d 'Print help'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train-classifier" -l fashion-mnist-dir -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train-classifier" -l epochs -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train-classifier" -l out -d 'Where to write the classifier checkpoint' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand train-classifier" -s h -l help -d 'Print help'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l reconstructions -d 'Instead of samples, score an autoencoder\'s reconstructions D(E(x)) of test images: `latent` (the built-in latent model\'s autoencoder) or an autoencoder checkpoint file' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l edits -d 'Instead of samples, measure image-to-image on test images at these strengths (e.g. 0.6,0.8,1.0): each image pushed towards the next class ((label + 1) mod 10) with the built-in pixel model (DPM++ 2M, 20 steps, the default guidance); prints the share judged as that class, as their own class, and how far the results moved from the inputs' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l autoencoder -d '--prompts, --nll, --loss-by-level: the autoencoder of a latent model [default: a built-in model\'s own; for a checkpoint file, the one it was trained with, as its header records]' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l guidance -d 'Guidance scale: w (0 = unconditional, 1 = conditional, more = stronger), or CFG++\'s λ in [0, 1] [default: the method\'s: cfg 1.5, rescale 7.5, apg 7.5, cfgpp 0.6, auto 2.25]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l guidance-interval -d 'Guide only at noise levels λ = ln(ᾱ / (1 - ᾱ)) from LO to HI, e.g. -3.4,2.5 (w = 1 elsewhere: Kynkäänniemi et al. 2024, guidance in a limited interval)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l guidance-method -d 'How guidance combines the predictions: cfg (Ho & Salimans 2022), rescale (CFG rescaled to the conditional prediction\'s std per image, Lin et al. 2024), apg (adaptive projected guidance on x̂_0, Sadat et al. 2024), cfgpp (CFG++: renoise with ε̂_Ø, λ in [0, 1]; ddim, euler-a, dpmpp-2m; Chung et al. 2024), auto (autoguidance: a weaker model of the same kind guides, Karras et al. 2024)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l guidance-rescale -d 'rescale: φ in [0, 1], the share of the rescaled prediction' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l apg-eta -d 'apg: η in [0, 1], the weight of the update\'s part parallel to x̂_y (0: only the orthogonal part)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l apg-momentum -d 'apg: the momentum β in (-1, 1) of the update\'s running average (negative: away from the last steps\')' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l apg-threshold -d 'apg: the largest norm r of the update per image (0: no limit)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l model -d '--nll, --loss-by-level: the model, `fashion` or `latent` (built in) or a checkpoint file; a latent model\'s bound is on the autoencoder\'s latents of the test images, not on their pixels' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l stride -d '--nll: one t is evaluated per stratum of timesteps, strata one step wide within 20 steps of t = 1 and of t = T and at most this wide between (1: every t; the default evaluates 155 of the 1000)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l variance -d '--nll: σ_t² of the reverse process p_θ(x_{t-1} | x_t) = N(μ_θ, σ_t² I)' -r -f -a "beta-tilde\t'β̃_t = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) β_t, the posterior\'s own variance'
beta\t'β_t'"
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l csv -d '--nll: write the bound\'s terms at every evaluated t here (CSV: t, λ, bits, RMSE of x̂_0); with --ode, each image\'s bound and ODE likelihood (CSV: image, label, bound_bits, ode_bits)' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l ode-steps -d '--ode: Heun steps, uniform in λ from the schedule\'s first level to its last (two network evaluations each, each a forward pass and a vector–Jacobian product) [default: 64]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l ode-check -d '--ode: first solve this many of the images by the adaptive Dormand–Prince solver too and print how far the Heun steps land from it, in bits per dimension' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l ode-tolerance -d '--ode-check: the adaptive solver\'s relative and absolute tolerance' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l n -d 'How many test images to reconstruct, edit or take the bound of' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l classifier -d 'The judge: `fashion` (the classifier built into diffusion-lab) or a checkpoint written by `train-classifier`' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l fashion-mnist-dir -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l prompts -d 'Instead of samples, how well a text model (`--model fashion-text` or a checkpoint) follows prompts: --n samples of each class word ("sneaker", "trainer", …): the share the judge puts in that class; of "dark X" and "light X" (and small / large, plain / patterned) for every class: the measured attribute of each, and the share on the asked side of the training data\'s threshold for that class; held-out pairs marked'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l nll -d 'Instead of samples, the variational bound on the negative log-likelihood of test images under `--model` (Ho et al. 2020, eq. 5: L_T + Σ L_{t-1} + L_0), in bits per dimension, with its split over t and the error of x̂_0 at each t (the schedule: the model\'s training schedule, T = 1000)'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l loss-by-level -d 'Instead of samples, the training loss ||ε - ε_θ(x_t, λ)||² of `--model` on test images at the centre of each noise-level bin (λ from -20 to 10, as the Train view splits it): what it learned at each level'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l no-clip -d '--nll: μ_θ from ε̂ as the network gave it, instead of from x̂_0 clipped to the data range (the default, as Ho et al.\'s reference bound and every sampler here clip it)'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l conditional -d '--nll, --loss-by-level: ε̂ given each test image\'s label (a bound on -log p(x_0 | y)); without it, unconditional'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -l ode -d 'With --nll: also the log-likelihood of the same images under the model\'s probability-flow ODE (Song et al. 2021; dequantised 8-bit data, Hutchinson\'s trace estimator with one Rademacher probe per image), printed beside the bound, both in bits per dimension with their standard errors'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand eval" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand bench" -l model -d 'A built-in model (`fashion`, `latent`) or a checkpoint file' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand bench" -l autoencoder -d 'The autoencoder that decodes a latent model [default: a built-in model\'s own; for a checkpoint file, the one it was trained with, as its header records]' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand bench" -l batch -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand bench" -l sampler -d 'ddpm (every timestep), ddim, euler, euler-a, heun, dpmpp-2m or dpmpp-2m-sde [default: dpmpp-2m, with karras spacing: the measured best at 20 steps, see assets/models/README.md]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand bench" -l sampling-steps -d 'Sampling steps (network evaluations: as many, Heun\'s about twice; DDPM takes every timestep)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand bench" -l spacing -d 'Where the steps sit: trailing (from pure noise), leading, linspace, or karras (σ spacing) [default: karras for the default sampler, trailing for one given with --sampler]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand bench" -l eta -d 'DDIM\'s η in [0, 1]: 0 deterministic, 1 as noisy as DDPM' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand bench" -l guidance -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand bench" -l device -d 'auto, cpu or wgpu' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand bench" -l repeats -d 'Timed runs of each kind' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand bench" -l only -d 'Time only streamed runs (what the app does: every x_t handed out, and decoded for a latent model) or only plain ones (what `sample` does); both, for the comparison, by default' -r -f -a "streamed\t''
plain\t''"
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand bench" -l threads -d 'CPU threads to compute on [default: one per core]. `benches/torch_reference.py` passes the thread count it gives PyTorch, so that both sides run on as many cores' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand bench" -l json -d 'Run the fixed suite (forward passes, guided DDIM-50 and DDPM-1000 runs, training steps of both built-in models) and print one JSON object; the other flags except --device and --threads are ignored'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand bench" -l quick -d 'With --json: one timed repeat of everything (a smoke test of the suite; timings are noisier)'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand bench" -s h -l help -d 'Print help'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l x -d 'The columns: SETTING=VALUE,VALUE,... with SETTING one of guidance, steps, sampler, spacing, eta, class, seed, timesteps, schedule, strength (with --init-image), and for a text model prompt (whole prompts, separated by `|`: "prompt=dark boot|light boot") and prompt_sr (search and replace in --prompt: "prompt_sr=dark,light" draws the prompt as it is, then with "dark" replaced by "light")' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l y -d 'The rows, written as --x' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l out -d 'The PNG to write' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l model -d 'A built-in model (`fashion`: pixel space, `latent`: the autoencoder\'s latent space, `fashion-text`: latent, conditioned on prompts) or a checkpoint file written by `train`' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l autoencoder -d 'The autoencoder that turns a latent model\'s latents into pixels [default: a built-in model\'s own; for a checkpoint file, the one it was trained with, as its header records]' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l device -d 'auto, cpu or wgpu' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l guide -d 'Autoguidance\'s weaker model: an earlier checkpoint of the same kind as --model [default: a built-in model\'s own earlier checkpoint; none for a checkpoint file]' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l class -d 'The class of every cell (unless an axis varies it), or `any`' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l guidance -d 'Guidance scale: w (0 = unconditional, 1 = conditional, more = stronger), or CFG++\'s λ in [0, 1] [default: the method\'s: cfg 1.5, rescale 7.5, apg 7.5, cfgpp 0.6, auto 2.25]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l guidance-interval -d 'Guide only at noise levels λ = ln(ᾱ / (1 - ᾱ)) from LO to HI, e.g. -3.4,2.5 (w = 1 elsewhere: Kynkäänniemi et al. 2024, guidance in a limited interval)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l guidance-method -d 'How guidance combines the predictions: cfg (Ho & Salimans 2022), rescale (CFG rescaled to the conditional prediction\'s std per image, Lin et al. 2024), apg (adaptive projected guidance on x̂_0, Sadat et al. 2024), cfgpp (CFG++: renoise with ε̂_Ø, λ in [0, 1]; ddim, euler-a, dpmpp-2m; Chung et al. 2024), auto (autoguidance: a weaker model of the same kind guides, Karras et al. 2024)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l guidance-rescale -d 'rescale: φ in [0, 1], the share of the rescaled prediction' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l apg-eta -d 'apg: η in [0, 1], the weight of the update\'s part parallel to x̂_y (0: only the orthogonal part)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l apg-momentum -d 'apg: the momentum β in (-1, 1) of the update\'s running average (negative: away from the last steps\')' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l apg-threshold -d 'apg: the largest norm r of the update per image (0: no limit)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l prompt -d 'What a text model (`--model fashion-text`) draws, e.g. "dark ankle boot". Words it does not know are named, with the words it knows, and read as <unk>' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l negative-prompt -d 'What guidance steers away from, in place of the empty prompt: ε̂ = ε̂_neg + w (ε̂_prompt - ε̂_neg)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l seed -d 'The seed of every cell: all start from the same x_T' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l sampler -d 'ddpm (every timestep), ddim, euler, euler-a, heun, dpmpp-2m or dpmpp-2m-sde [default: dpmpp-2m, with karras spacing: the measured best at 20 steps, see assets/models/README.md]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l sampling-steps -d 'Sampling steps (network evaluations: as many, Heun\'s about twice; DDPM takes every timestep)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l spacing -d 'Where the steps sit: trailing (from pure noise), leading, linspace, or karras (σ spacing) [default: karras for the default sampler, trailing for one given with --sampler]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l eta -d 'DDIM\'s η in [0, 1]: 0 deterministic, 1 as noisy as DDPM' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l kind -d 'How β_t grows: linear, cosine, quadratic (linear in sqrt β) or sigmoid' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l timesteps -d 'T, the number of diffusion timesteps of the schedule (1..=10000) [default: 1000]. Not the number of sampling steps, which is `sample --sampling-steps`' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l beta-start -d 'β_1 [default: the kind\'s usual value; 1e-4 for linear and sigmoid, 0.00085 for quadratic]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l beta-end -d 'β_T [default: the kind\'s usual value; 0.02 for linear and sigmoid, 0.012 for quadratic]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l init-image -d 'Image-to-image (SDEdit): start from this picture (any size and format; resized to the model\'s), noised to --strength, instead of from pure noise' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l strength -d 'How far into the forward process the picture goes: 0 keeps it, 1 is a plain Generate' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l mask -d 'Inpainting: an image (any size; resized), white (> 50 %) where the model repaints; the rest of --init-image stays. Usually with --strength 1' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l resample -d 'RePaint\'s resampling for inpainting: each step taken this many times (1 = once)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -l zoom -d 'PNG pixels per image pixel' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand grid" -s h -l help -d 'Print help'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand interpolate" -l seeds -d 'Between two seeds\' noises: A,B (the class stays --class)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand interpolate" -l classes -d 'Between two classes: A,B (the noise stays --seed\'s)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand interpolate" -l prompts -d 'Between a text model\'s two prompts: "A|B", e.g. "dark boot|light sneaker" (τ_θ of each, token by token; the noise stays --seed\'s)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand interpolate" -l frames -d 'Images in the strip, both ends included' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand interpolate" -l out -d 'The PNG strip to write' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand interpolate" -l gif -d 'Also write the strip as an animated GIF (there and back)' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand interpolate" -l model -d 'A built-in model (`fashion`: pixel space, `latent`: the autoencoder\'s latent space, `fashion-text`: latent, conditioned on prompts) or a checkpoint file written by `train`' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand interpolate" -l autoencoder -d 'The autoencoder that turns a latent model\'s latents into pixels [default: a built-in model\'s own; for a checkpoint file, the one it was trained with, as its header records]' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand interpolate" -l device -d 'auto, cpu or wgpu' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand interpolate" -l guide -d 'Autoguidance\'s weaker model: an earlier checkpoint of the same kind as --model [default: a built-in model\'s own earlier checkpoint; none for a checkpoint file]' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand interpolate" -l class -d 'The class when interpolating seeds, or `any`' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand interpolate" -l seed -d 'The seed when interpolating classes' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand interpolate" -l guidance -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand interpolate" -l sampler -d 'ddpm (every timestep), ddim, euler, euler-a, heun, dpmpp-2m or dpmpp-2m-sde [default: dpmpp-2m, with karras spacing: the measured best at 20 steps, see assets/models/README.md]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand interpolate" -l sampling-steps -d 'Sampling steps (network evaluations: as many, Heun\'s about twice; DDPM takes every timestep)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand interpolate" -l spacing -d 'Where the steps sit: trailing (from pure noise), leading, linspace, or karras (σ spacing) [default: karras for the default sampler, trailing for one given with --sampler]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand interpolate" -l eta -d 'DDIM\'s η in [0, 1]: 0 deterministic, 1 as noisy as DDPM' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand interpolate" -l kind -d 'How β_t grows: linear, cosine, quadratic (linear in sqrt β) or sigmoid' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand interpolate" -l timesteps -d 'T, the number of diffusion timesteps of the schedule (1..=10000) [default: 1000]. Not the number of sampling steps, which is `sample --sampling-steps`' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand interpolate" -l beta-start -d 'β_1 [default: the kind\'s usual value; 1e-4 for linear and sigmoid, 0.00085 for quadratic]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand interpolate" -l beta-end -d 'β_T [default: the kind\'s usual value; 0.02 for linear and sigmoid, 0.012 for quadratic]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand interpolate" -l zoom -d 'Output pixels per image pixel' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand interpolate" -s h -l help -d 'Print help'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l model -d 'A built-in model (`fashion`: pixel space, `latent`: the autoencoder\'s latent space, `fashion-text`: latent, conditioned on prompts) or a checkpoint file written by `train`' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l autoencoder -d 'The autoencoder that turns a latent model\'s latents into pixels [default: a built-in model\'s own; for a checkpoint file, the one it was trained with, as its header records]' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l device -d 'auto, cpu or wgpu' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l guide -d 'Autoguidance\'s weaker model: an earlier checkpoint of the same kind as --model [default: a built-in model\'s own earlier checkpoint; none for a checkpoint file]' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l class -d 'The class to draw (0..9 for Fashion-MNIST); without it, unconditional' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l seed -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l step -d 'Which step to take apart: 1 = the first (from x_T), up to the sampler\'s number of steps' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l guidance -d 'Guidance scale: w (0 = unconditional, 1 = conditional, more = stronger), or CFG++\'s λ in [0, 1] [default: the method\'s: cfg 1.5, rescale 7.5, apg 7.5, cfgpp 0.6, auto 2.25]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l guidance-interval -d 'Guide only at noise levels λ = ln(ᾱ / (1 - ᾱ)) from LO to HI, e.g. -3.4,2.5 (w = 1 elsewhere: Kynkäänniemi et al. 2024, guidance in a limited interval)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l guidance-method -d 'How guidance combines the predictions: cfg (Ho & Salimans 2022), rescale (CFG rescaled to the conditional prediction\'s std per image, Lin et al. 2024), apg (adaptive projected guidance on x̂_0, Sadat et al. 2024), cfgpp (CFG++: renoise with ε̂_Ø, λ in [0, 1]; ddim, euler-a, dpmpp-2m; Chung et al. 2024), auto (autoguidance: a weaker model of the same kind guides, Karras et al. 2024)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l guidance-rescale -d 'rescale: φ in [0, 1], the share of the rescaled prediction' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l apg-eta -d 'apg: η in [0, 1], the weight of the update\'s part parallel to x̂_y (0: only the orthogonal part)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l apg-momentum -d 'apg: the momentum β in (-1, 1) of the update\'s running average (negative: away from the last steps\')' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l apg-threshold -d 'apg: the largest norm r of the update per image (0: no limit)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l sampler -d 'ddpm (every timestep), ddim, euler, euler-a, heun, dpmpp-2m or dpmpp-2m-sde [default: dpmpp-2m, with karras spacing: the measured best at 20 steps, see assets/models/README.md]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l sampling-steps -d 'Sampling steps (network evaluations: as many, Heun\'s about twice; DDPM takes every timestep)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l spacing -d 'Where the steps sit: trailing (from pure noise), leading, linspace, or karras (σ spacing) [default: karras for the default sampler, trailing for one given with --sampler]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l eta -d 'DDIM\'s η in [0, 1]: 0 deterministic, 1 as noisy as DDPM' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l kind -d 'How β_t grows: linear, cosine, quadratic (linear in sqrt β) or sigmoid' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l timesteps -d 'T, the number of diffusion timesteps of the schedule (1..=10000) [default: 1000]. Not the number of sampling steps, which is `sample --sampling-steps`' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l beta-start -d 'β_1 [default: the kind\'s usual value; 1e-4 for linear and sigmoid, 0.00085 for quadratic]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l beta-end -d 'β_T [default: the kind\'s usual value; 0.02 for linear and sigmoid, 0.012 for quadratic]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l zoom -d 'Output pixels per image pixel' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l out -d 'The figure to write (PNG)' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l runs-per-class -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -l guidance-curve -d 'Instead of one step: where guidance acts in this model. Runs `--runs-per-class` images of every class and prints (and plots into `--out`) the mean |ε̂_y - ε̂_Ø| at each step against its noise level'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand explain" -s h -l help -d 'Print help'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand decided" -l model -d 'A built-in model (`fashion`: pixel space, `latent`: the autoencoder\'s latent space, `fashion-text`: latent, conditioned on prompts) or a checkpoint file written by `train`' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand decided" -l autoencoder -d 'The autoencoder that turns a latent model\'s latents into pixels [default: a built-in model\'s own; for a checkpoint file, the one it was trained with, as its header records]' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand decided" -l device -d 'auto, cpu or wgpu' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand decided" -l guide -d 'Autoguidance\'s weaker model: an earlier checkpoint of the same kind as --model [default: a built-in model\'s own earlier checkpoint; none for a checkpoint file]' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand decided" -l runs -d 'Independent runs, each from its own x_T' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand decided" -l continuations -d 'Continuations of each run from each step, each with fresh noise' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand decided" -l points -d 'Steps to continue from, spread evenly from x_T to the run\'s last step' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand decided" -l sampler -d 'A stochastic sampler: ddpm, ddim (with --eta > 0), euler-a or dpmpp-2m-sde' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand decided" -l sampling-steps -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand decided" -l eta -d 'DDIM\'s η: 1 is DDPM\'s ancestral sampling over the chosen steps' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand decided" -l class -d 'Ask for this class (with --guidance); without it unconditional, where which garment it becomes is the model\'s own choice' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand decided" -l branch-class -d 'Continue from each step asking for this class instead of the run\'s (as a branch of "Continue from here" that changes the class); the run itself keeps --class' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand decided" -l guidance -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand decided" -l seed -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand decided" -l classifier -d 'The judge: `fashion` (built in) or a checkpoint written by `train-classifier`' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand decided" -l csv -d 'Write the table here as CSV (step, t, λ, same class, spread, distance from the run\'s end)' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand decided" -l rows -d 'Write Figure 7 for the first run here: a row per step (x_t, then its continuations\' ends)' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand decided" -s h -l help -d 'Print help'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l preset -d 'The data: two-gaussians, eight-gaussians, moons, swiss-roll, ring or letter' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l points -d 'Points drawn from the preset to train on' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l steps -d 'Optimizer steps (batches of 256 points), of each recipe with --recipe' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l objective -d 'What the network predicts: eps (the noise), x0 (the clean point), v (α ε - σ x₀) or flow (the velocity ε - x₀ of the straight path) [default: eps]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l weighting -d 'How much each noise level counts: plain, min-snr[:γ] (γ = 5), edm[:σ_data] (σ_data measured on the data), uniform-t or logit-normal[:mean,std] [default: uniform-t for flow, plain otherwise]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l recipe -d 'Train this recipe, OBJECTIVE[:WEIGHTING] (e.g. eps, v:min-snr:5, flow:logit-normal:0,1), beside the others given (1 to 4 times): all on the same data from the same seed, then compared — how straight their particles travel and their distance to the data at 1, 2, 4, 8 and 20 steps — and printed (and drawn with --figure). Instead of the single network\'s run: takes none of its picture flags' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l common-spacing -d 'The spacing every recipe is also measured with (beside its usual one: trailing for eps, x0 and v, karras for edm, uniform-t for flow): trailing, leading, linspace, karras or uniform-t (uniform in the straight path\'s time t)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l seed -d 'Seeds the data, the network\'s initial weights and the training noise' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l sampler -d 'ddpm (every timestep), ddim, euler, euler-a, heun, dpmpp-2m or dpmpp-2m-sde [default: dpmpp-2m, with karras spacing: the measured best at 20 steps, see assets/models/README.md]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l sampling-steps -d 'Sampling steps (network evaluations: as many, Heun\'s about twice; DDPM takes every timestep)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l spacing -d 'Where the steps sit: trailing (from pure noise), leading, linspace, or karras (σ spacing) [default: karras for the default sampler, trailing for one given with --sampler]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l eta -d 'DDIM\'s η in [0, 1]: 0 deterministic, 1 as noisy as DDPM' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l kind -d 'How β_t grows: linear, cosine, quadratic (linear in sqrt β) or sigmoid' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l timesteps -d 'T, the number of diffusion timesteps of the schedule (1..=10000) [default: 1000]. Not the number of sampling steps, which is `sample --sampling-steps`' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l beta-start -d 'β_1 [default: the kind\'s usual value; 1e-4 for linear and sigmoid, 0.00085 for quadratic]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l beta-end -d 'β_T [default: the kind\'s usual value; 0.02 for linear and sigmoid, 0.012 for quadratic]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l class -d 'Guide the particles towards this class (0-based; the presets\' classes are their colours)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l guidance -d 'Classifier-free guidance w, with --class: 0 unconditional, 1 the class\'s own distribution, more sharper' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l particles -d 'Particles run from x_T ~ N(0, I)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l particle-seed -d 'Seed of the particles\' x_T and noise' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l field -d 'The field the picture shows' -r -f -a "score\t'∇ log q_t = -ε̂ / σ_t: arrows towards the data'
epsilon\t'ε̂: the noise the network sees, arrows away from the data'
target\t'The network\'s own output: its objective\'s target (ε, x₀, v or the velocity u = ε - x₀)'
none\t''"
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l field-t -d 'The timestep t of the schedule at which the picture shows the field and the data\'s cloud x_t' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l measure-every -d 'Measure the distance every this many steps during training (0: only at the end)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l out -d 'Write the picture here: the data with the field at --field-t, and the particles\' paths' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l gif -d 'Write the particles\' run here as an animated GIF' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l csv -d 'Write (step, loss) and (step, distances) here as CSV' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l bench-steps -d 'The step counts of --solver-bench: FIRST..LAST, doublings from FIRST up to LAST' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l guidance-methods -d 'The methods of --guidance-bench, comma-separated: cfg, rescale, apg, cfgpp, auto [default: all]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l rescale-phi -d 'Rescale\'s φ in [0, 1] (Lin et al. 2024): how much of the rescaled ε̂ is mixed in' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l apg-eta -d 'APG\'s η in [0, 1] (Sadat et al. 2024): the weight of the update\'s part along x̂_y' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l apg-momentum -d 'APG\'s momentum β in (-1, 1)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l apg-threshold -d 'APG\'s norm threshold r (0: no limit)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l guide-steps -d 'Training steps of autoguidance\'s weaker guide (the same network from the same seed) [default: --steps / 8, at least 100]' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l figure -d 'Write the recipe comparison here as a PNG: each recipe\'s paths in y = x/(α+σ) beside the exact denoiser\'s, and the distance to the data against the number of steps' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l likelihood-points -d '--likelihood: points drawn afresh from the data\'s distribution to average over' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l likelihood-stride -d '--likelihood: the bound\'s widest stratum of t (1: every t of the schedule summed)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l likelihood-tolerance -d '--likelihood: relative and absolute tolerance of the network\'s ODE (its ε̂ is f32)' -r
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l error-map -d 'Also draw the error of the learned field against the true one (||ε̂ - ε*||, known in closed form for the presets) as a heat map'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l compare-steps -d 'Also run the sampler at 5, 10, 20 and 50 steps and print each one\'s distance to the data'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l solver-bench -d 'Measure every deterministic sampler (DDIM η = 0 = Euler, Heun, DPM++ 2M) against the exact probability-flow ODE solution of the preset, with the exact score and with the trained network (--steps 0: the exact score only): prints `<name>: order <p>` per method; --out writes the log-log plot, --csv the table'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l guidance-bench -d 'Compare the guidance methods against the exact class-conditional density p(x|y) of the preset: each at a handful of scales towards --class (default 0) from the same x_T, with the trained network and with the exact scores; prints one line per method × scale (sliced W₂ and energy distance to p(x|y), spread ratio); --out writes the picture, --csv the table'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l no-exact -d 'Leave out the runs with the exact scores in place of the network'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -l likelihood -d 'Train the network, then print the likelihood of fresh points of the data in bits/dim: the true density, the probability-flow ODE with the exact score and with the network (exact divergence), and the network\'s variational bound (instead of the particles\' run; --csv writes one row per point)'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand lab2d" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand tour" -l export -d 'Write the tour as a printable page into this folder (created if missing): tour.md (or tour.html) and a picture per step, pictures/NN-name.png, each made by the app\'s own code on the CPU with the built-in models (about two minutes on two cores). Existing files of those names are replaced' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand tour" -l format -d 'The page\'s format: markdown (tour.md) or html (tour.html, one self-contained page, print-friendly)' -r -f -a "markdown\t''
html\t''"
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand tour" -l list -d 'Print the steps of the tour, one line each: its number, title and formula'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand tour" -s h -l help -d 'Print help'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand package-files" -l out -d 'The folder to write into (created if missing): man/, completions/ and icons/hicolor/SIZE/apps/' -r -F
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand package-files" -l no-icons -d 'Leave out the icons (drawing them samples the built-in pixel model, a few seconds)'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand package-files" -s h -l help -d 'Print help'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand help; and not __fish_seen_subcommand_from schedule train sample train-autoencoder train-classifier eval bench grid interpolate explain decided lab2d tour package-files help" -f -a "schedule" -d 'Print every derived quantity of a noise schedule for every timestep t = 1..T'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand help; and not __fish_seen_subcommand_from schedule train sample train-autoencoder train-classifier eval bench grid interpolate explain decided lab2d tour package-files help" -f -a "train" -d 'Train the noise-prediction UNet on Fashion-MNIST or a folder of images (resumable)'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand help; and not __fish_seen_subcommand_from schedule train sample train-autoencoder train-classifier eval bench grid interpolate explain decided lab2d tour package-files help" -f -a "sample" -d 'Generate images with a trained model'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand help; and not __fish_seen_subcommand_from schedule train sample train-autoencoder train-classifier eval bench grid interpolate explain decided lab2d tour package-files help" -f -a "train-autoencoder" -d 'Train latent diffusion\'s autoencoder (reconstruction + perceptual + KL + PatchGAN; resumable)'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand help; and not __fish_seen_subcommand_from schedule train sample train-autoencoder train-classifier eval bench grid interpolate explain decided lab2d tour package-files help" -f -a "train-classifier" -d 'Train the Fashion-MNIST classifier that `eval` uses as its judge'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand help; and not __fish_seen_subcommand_from schedule train sample train-autoencoder train-classifier eval bench grid interpolate explain decided lab2d tour package-files help" -f -a "eval" -d 'Score a folder of samples: Fréchet distance of classifier features against the test set, and class accuracy'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand help; and not __fish_seen_subcommand_from schedule train sample train-autoencoder train-classifier eval bench grid interpolate explain decided lab2d tour package-files help" -f -a "bench" -d 'Time sampling through the engine, with and without streaming every step'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand help; and not __fish_seen_subcommand_from schedule train sample train-autoencoder train-classifier eval bench grid interpolate explain decided lab2d tour package-files help" -f -a "grid" -d 'An X/Y plot: one image per pair of values of two settings (e.g. guidance x steps), labelled, in one PNG'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand help; and not __fish_seen_subcommand_from schedule train sample train-autoencoder train-classifier eval bench grid interpolate explain decided lab2d tour package-files help" -f -a "interpolate" -d 'A strip of images between two seeds (x_T interpolated spherically) or two classes (τ_θ(y)), as PNG and GIF'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand help; and not __fish_seen_subcommand_from schedule train sample train-autoencoder train-classifier eval bench grid interpolate explain decided lab2d tour package-files help" -f -a "explain" -d 'One step of a run as a figure: the update with its numbers and every term as a picture'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand help; and not __fish_seen_subcommand_from schedule train sample train-autoencoder train-classifier eval bench grid interpolate explain decided lab2d tour package-files help" -f -a "decided" -d 'When is an image decided? Runs continued from their own x_t with fresh noise (DDPM\'s Figure 7, measured)'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand help; and not __fish_seen_subcommand_from schedule train sample train-autoencoder train-classifier eval bench grid interpolate explain decided lab2d tour package-files help" -f -a "lab2d" -d 'The 2-D lab: train a small network on points of the plane (a preset), run particles from x_T to the data with any sampler, and measure and draw them'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand help; and not __fish_seen_subcommand_from schedule train sample train-autoencoder train-classifier eval bench grid interpolate explain decided lab2d tour package-files help" -f -a "tour" -d 'The guided tour of the diffusion story: `--list` prints its steps, `--export DIR` writes it as a printable page (Markdown or HTML) with a picture per step made by the app\'s own code'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand help; and not __fish_seen_subcommand_from schedule train sample train-autoencoder train-classifier eval bench grid interpolate explain decided lab2d tour package-files help" -f -a "package-files" -d 'Write the files a desktop package installs beside the binary (man pages, shell completions, icons)'
complete -c diffusion-lab -n "__fish_diffusion_lab_using_subcommand help; and not __fish_seen_subcommand_from schedule train sample train-autoencoder train-classifier eval bench grid interpolate explain decided lab2d tour package-files help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
