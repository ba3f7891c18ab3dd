"""The whole error output of each case in ``bad_input_cases.py``: every ``tl <verb>: error:`` line, in order.

``{dir}`` stands for the case's own folder, ``{root}`` for the shared world's (good data, tiny BERT, runs).
"""

MESSAGES: dict[str, list[str]] = {
    'validate:unknown top-level key': [
        "tl validate: error: {dir}/recipe.yaml: unknown key 'trian'. Did you mean 'train'? Valid keys: name, seed, output_dir, backbone, data, strategy, train, baselines, compare, sweep",
    ],
    'validate:unknown nested key': [
        "tl validate: error: {dir}/recipe.yaml: unknown key 'train.epoch'. Did you mean 'epochs'? Valid keys in 'train': epochs, batch_size, eval_batch_size, lr, optimizer, weight_decay, backbone_lr_ratio, scheduler, warmup_ratio, grad_accum_steps, max_grad_norm, mixed_precision, label_smoothing, num_workers, log_every_steps, keep_checkpoints, checkpoint_every_steps, best_metric, skip_nonfinite, compile, gradient_checkpointing, feature_cache, trackers, class_weights, group_by_length, length_group_batches, cpu_dropout, padding_free, ema, soup",
    ],
    'validate:wrong type': [
        "tl validate: error: {dir}/recipe.yaml: train.batch_size: Input should be a valid integer, unable to parse string as an integer, got 'many'",
    ],
    'validate:negative lr': [
        'tl validate: error: {dir}/recipe.yaml: train.lr: Input should be greater than 0, got -0.1',
    ],
    'validate:zero epochs': [
        'tl validate: error: {dir}/recipe.yaml: train.epochs: Input should be greater than or equal to 1, got 0',
    ],
    'validate:zero batch size': [
        'tl validate: error: {dir}/recipe.yaml: train.batch_size: Input should be greater than or equal to 1, got 0',
    ],
    'validate:zero accumulation': [
        'tl validate: error: {dir}/recipe.yaml: train.grad_accum_steps: Input should be greater than or equal to 1, got 0',
    ],
    'validate:negative sample cap': [
        'tl validate: error: {dir}/recipe.yaml: data.max_train_samples: Input should be greater than or equal to 1, got -1',
    ],
    'validate:seed not a number': [
        "tl validate: error: {dir}/recipe.yaml: seed: Input should be a valid integer, unable to parse string as an integer, got 'abc'",
    ],
    'validate:bad precision': [
        "tl validate: error: {dir}/recipe.yaml: train.mixed_precision: 'fp8' is not allowed; choose 'auto', 'no', 'fp16' or 'bf16'",
    ],
    'validate:bad enum': [
        "tl validate: error: {dir}/recipe.yaml: train.scheduler: 'warm' is not allowed; choose 'linear', 'cosine' or 'constant'",
    ],
    'validate:bad data format': [
        "tl validate: error: {dir}/recipe.yaml: data.format: 'xml' is not allowed; choose 'hf', 'csv', 'json', 'parquet', 'imagefolder', 'digits' or 'conll'",
    ],
    'validate:bad task': [
        "tl validate: error: {dir}/recipe.yaml: data.task: Unknown task plugin 'ranking'. Registered task plugins: classification, multi_label, regression, token_classification. Install a package that provides it (entry-point group 'tl_toolkit.tasks') or pick one of these.",
    ],
    'validate:bad union value': [
        "tl validate: error: {dir}/recipe.yaml: train.gradient_checkpointing: 'maybe' is not allowed; give a valid boolean or 'auto'",
    ],
    'validate:missing section': [
        'tl validate: error: {dir}/recipe.yaml: data: required key is missing; add it to the recipe',
    ],
    'validate:missing required key': [
        'tl validate: error: {dir}/recipe.yaml: backbone.model: required key is missing; add it to the recipe',
    ],
    'validate:section given as a scalar': [
        'tl validate: error: {dir}/recipe.yaml: train: expected a section of keys, got 3',
    ],
    'validate:empty name': [
        "tl validate: error: {dir}/recipe.yaml: name: String should have at least 1 character, got ''",
    ],
    'validate:warmup ratio out of range': [
        'tl validate: error: {dir}/recipe.yaml: train.warmup_ratio: Input should be less than 1, got 1.5',
    ],
    'validate:unknown baseline': [
        "tl validate: error: {dir}/recipe.yaml: baselines.0: 'random' is not allowed; choose 'scratch'",
    ],
    'validate:unknown best metric': [
        "tl validate: error: {dir}/recipe.yaml: train.best_metric: task 'classification' reports no metric 'auc'. Choose one of accuracy, f1_macro, loss",
    ],
    'validate:unknown tracker': [
        "tl validate: error: {dir}/recipe.yaml: train.trackers: unknown tracker 'nope'. Choose from: tensorboard, wandb, mlflow, comet_ml, aim, clearml, dvclive, swanlab, trackio",
    ],
    'validate:recipe file missing': [
        'tl validate: error: {dir}/nope.yaml: recipe file not found; give the path of a .yaml recipe',
    ],
    'validate:recipe is a folder': [
        'tl validate: error: {dir}/recipe-dir: recipe file not found (it is a directory); give the path of a .yaml recipe',
    ],
    'validate:recipe unreadable': [
        "tl validate: error: '{dir}/secret.yaml': permission denied; give yourself access (chmod/chown) or use another path",
    ],
    'validate:recipe not UTF-8': [
        'tl validate: error: {dir}/r.yaml: not a UTF-8 text file; save the recipe as UTF-8',
    ],
    'validate:recipe empty': [
        'tl validate: error: {dir}/empty.yaml: a recipe is a mapping of sections (name, backbone, data, ...)',
    ],
    'validate:recipe is not YAML': [
        "tl validate: error: {dir}/recipe.yaml: not valid YAML at line 2, column 1: expected ',' or ']', but got '<stream end>'",
    ],
    'validate:recipe is not a mapping': [
        'tl validate: error: {dir}/recipe.yaml: a recipe is a mapping of sections (name, backbone, data, ...)',
    ],
    "validate:override without '='": [
        "tl validate: error: override 'train.epochs': expected KEY=VALUE with a dotted key, e.g. train.epochs=1",
    ],
    'validate:override below a scalar': [
        "tl validate: error: {dir}/recipe.yaml: train.epochs: Input should be a valid integer, got {'max': 2}",
    ],
    'validate:override of an unknown key': [
        "tl validate: error: {dir}/recipe.yaml: unknown key 'train.bacth_size'. Did you mean 'batch_size'? Valid keys in 'train': epochs, batch_size, eval_batch_size, lr, optimizer, weight_decay, backbone_lr_ratio, scheduler, warmup_ratio, grad_accum_steps, max_grad_norm, mixed_precision, label_smoothing, num_workers, log_every_steps, keep_checkpoints, checkpoint_every_steps, best_metric, skip_nonfinite, compile, gradient_checkpointing, feature_cache, trackers, class_weights, group_by_length, length_group_batches, cpu_dropout, padding_free, ema, soup",
    ],
    'validate:override of an unknown section': [
        "tl validate: error: {dir}/recipe.yaml: unknown key 'trainer'. Did you mean 'train'? Valid keys: name, seed, output_dir, backbone, data, strategy, train, baselines, compare, sweep",
    ],
    'validate:output_dir is a file': [
        "tl validate: error: {dir}/recipe.yaml: output_dir: '{dir}/taken' is a file, not a folder; choose another output_dir or remove the file",
    ],
    'validate:output_dir under a file': [
        "tl validate: error: {dir}/recipe.yaml: output_dir: cannot create '{dir}/f/out': '{dir}/f' is a file, not a folder; choose another output_dir",
    ],
    'validate:output_dir in a read-only folder': [
        "tl validate: error: {dir}/recipe.yaml: output_dir: cannot create '{dir}/locked/out': folder '{dir}/locked' is not writable (permission denied); choose a folder you can write to",
    ],
    'validate:output_dir that cannot be created': [
        "tl validate: error: {dir}/recipe.yaml: output_dir: '/proc/tl/out' cannot be created ('/proc': No such file or directory; check the path); choose another output_dir",
    ],
    'run:output_dir is a file': [
        "tl run: error: {dir}/recipe.yaml: output_dir: '{dir}/taken' is a file, not a folder; choose another output_dir or remove the file",
    ],
    'run:output_dir under a file': [
        "tl run: error: {dir}/recipe.yaml: output_dir: cannot create '{dir}/f/out': '{dir}/f' is a file, not a folder; choose another output_dir",
    ],
    'run:output_dir in a read-only folder': [
        "tl run: error: {dir}/recipe.yaml: output_dir: cannot create '{dir}/locked/out': folder '{dir}/locked' is not writable (permission denied); choose a folder you can write to",
    ],
    'run:output_dir that cannot be created': [
        "tl run: error: {dir}/recipe.yaml: output_dir: '/proc/tl/out' cannot be created ('/proc': No such file or directory; check the path); choose another output_dir",
    ],
    'run:recipe unreadable': [
        "tl run: error: '{dir}/secret.yaml': permission denied; give yourself access (chmod/chown) or use another path",
    ],
    'run:recipe is a folder': [
        'tl run: error: {dir}/recipe-dir: recipe file not found (it is a directory); give the path of a .yaml recipe',
    ],
    'run:finished run in output_dir': [
        "tl run: error: output_dir: '{dir}/out' already holds a finished run; pass --overwrite to replace it (overwrite=True from Python) or set output_dir=<another directory>",
    ],
    'run:unfinished run in output_dir': [
        "tl run: error: output_dir: '{dir}/out' holds an unfinished run; pass --resume to continue it, or --overwrite to start over (resume=True or overwrite=True from Python)",
    ],
    'run:no recipe': [
        'tl run: error: run: give a recipe file, or --from-manifest MODEL_DIR to re-run a finished run',
    ],
    'run:from-manifest of a folder that is not a run': [
        'tl run: error: --from-manifest: {dir}/out holds no manifest.json; give the model/ directory of a finished run (runs made before manifests existed have none: run their recipe.yaml instead)',
    ],
    'run:unknown option': [
        'tl: error: unrecognized arguments: --resmue',
    ],
    'run:unknown verb': [
        "tl: error: argument COMMAND: invalid choice: 'trian' (choose from 'run', 'compare', 'sweep', 'plan', 'validate', 'list', 'new-plugin', 'predict', 'export', 'wise-ft', 'eval')",
    ],
    'run:--overwrite with classes not in the data': [
        "tl run: error: data.classes: ['meh'] do not occur in the training labels of '{root}/train.tsv'; labels there: ['neg', 'pos']",
    ],
    'run:--overwrite with blank labels': [
        "tl run: error: data.train: 1 rows of '{dir}/nan.tsv' have no value in label column 'label' (first at row 8); fill or drop them",
    ],
    'run:--overwrite with a missing column': [
        "tl run: error: data.text_column: column 'sentence' not in '{root}/train.tsv'. Columns there: text, label",
    ],
    'run:--overwrite with LoRA targets that do not exist': [
        "tl run: error: strategy.options.target_modules: ['qkv_proj'] match no module of bert:{root}/bert; e.g. query, value",
    ],
    'run:--overwrite with weights that do not fit': [
        "tl run: error: backbone.weights: {dir}/other.safetensors does not fit '{root}/bert': missing ['bert.embeddings.word_embeddings.weight', 'bert.embeddings.position_embeddings.weight', 'bert.embeddings.token_type_embeddings.weight', 'bert.embeddings.LayerNorm.weight', 'bert.embeddings.LayerNorm.bias'], unexpected ['encoder.block.0.weight']",
    ],
    'run:--overwrite with a single class': [
        "tl run: error: data.label_column: the training data '{dir}/one.tsv' holds a single class in label column 'label' ('pos'); a classifier needs at least two classes: add examples of the others, or check data.label_column",
    ],
    'run:bad data leaves no new output_dir': [
        "tl run: error: data.classes: ['meh'] do not occur in the training labels of '{root}/train.tsv'; labels there: ['neg', 'pos']",
    ],
    'run:bad model leaves no new output_dir': [
        "tl run: error: backbone.weights: {dir}/other.safetensors does not fit '{root}/bert': missing ['bert.embeddings.word_embeddings.weight', 'bert.embeddings.position_embeddings.weight', 'bert.embeddings.token_type_embeddings.weight', 'bert.embeddings.LayerNorm.weight', 'bert.embeddings.LayerNorm.bias'], unexpected ['encoder.block.0.weight']",
    ],
    'validate:missing train file': [
        "tl validate: error: {dir}/recipe.yaml: data.train: file 'absent.tsv' not found; check the path (relative to {dir})",
    ],
    'validate:missing eval file': [
        "tl validate: error: {dir}/recipe.yaml: data.eval: file 'absent.tsv' not found; check the path (relative to {dir})",
    ],
    'validate:train file is a folder': [
        "tl validate: error: {dir}/recipe.yaml: data.train: '{dir}/d' is a folder; format 'csv' reads one file (give the file's path)",
    ],
    'run:train file is a folder': [
        "tl run: error: {dir}/recipe.yaml: data.train: '{dir}/d' is a folder; format 'csv' reads one file (give the file's path)",
    ],
    'validate:train file unreadable': [
        "tl validate: error: {dir}/recipe.yaml: data.train: cannot read '{dir}/locked.tsv': permission denied; give yourself access (chmod/chown) or use another path",
    ],
    'run:eval file unreadable': [
        "tl run: error: {dir}/recipe.yaml: data.eval: cannot read '{dir}/locked.tsv': permission denied; give yourself access (chmod/chown) or use another path",
    ],
    'validate:empty file': [
        "tl validate: error: {dir}/recipe.yaml: data.train: file '{dir}/empty.tsv' is empty; give a file with a header line and one example a line",
    ],
    'validate:whitespace file': [
        "tl validate: error: {dir}/recipe.yaml: data.train: file '{dir}/ws.tsv' holds only whitespace; give a file with one example a line",
    ],
    'validate:header but no rows': [
        "tl validate: error: {dir}/recipe.yaml: data.train: file '{dir}/h.tsv' has a header line but no rows; add examples below the header",
    ],
    'validate:non-UTF-8 text': [
        "tl validate: error: {dir}/recipe.yaml: data.train: file '{dir}/latin1.tsv' is not UTF-8 text (byte 0xe9 at offset 14, line 2); re-save it as UTF-8",
    ],
    'validate:non-UTF-8 eval': [
        "tl validate: error: {dir}/recipe.yaml: data.eval: file '{dir}/latin1.tsv' is not UTF-8 text (byte 0xe9 at offset 14, line 2); re-save it as UTF-8",
    ],
    'run:missing text column': [
        "tl run: error: data.text_column: column 'sentence' not in '{root}/train.tsv'. Columns there: text, label",
    ],
    'run:missing label column': [
        "tl run: error: data.label_column: column 'sentiment' not in '{root}/train.tsv'. Columns there: text, label",
    ],
    'run:missing pair column': [
        "tl run: error: data.text_pair_column: column 'hypothesis' not in '{root}/train.tsv'. Columns there: text, label",
    ],
    'run:missing image column': [
        "tl run: error: data.image_column: column 'image' not in '{root}/train.tsv'. Columns there: text, label",
    ],
    'run:missing label values (NaN)': [
        "tl run: error: data.train: 1 rows of '{dir}/nan.tsv' have no value in label column 'label' (first at row 8); fill or drop them",
    ],
    'run:empty text': [
        "tl run: error: data.text_column: 1 rows of '{dir}/blank.tsv' have no text in column 'text' (first at row 8); fill or drop them",
    ],
    'run:eval labels outside the training labels': [
        "tl run: error: data.eval: labels ['mixed'] in '{dir}/dev3.tsv' never occur in training data (training labels: ['neg', 'pos']); fix the eval labels or set data.classes",
    ],
    'run:classes unseen in training': [
        "tl run: error: data.classes: ['meh'] do not occur in the training labels of '{root}/train.tsv'; labels there: ['neg', 'pos']",
    ],
    'run:wrong CSV delimiter': [
        'tl run: error: data.delimiter: the header of \'{root}/train.tsv\' is separated by "\\t", not ";", so it reads as the single column \'text\\tlabel\'; set data.delimiter: "\\t"',
    ],
    'run:a single class': [
        "tl run: error: data.label_column: the training data '{dir}/one.tsv' holds a single class in label column 'label' ('pos'); a classifier needs at least two classes: add examples of the others, or check data.label_column",
    ],
    'run:a single class after data.classes': [
        "tl run: error: data.classes: keeps only the class 'pos'; a classifier needs at least two classes: list two or more, or leave data.classes out",
    ],
    'run:a single class, held-out eval': [
        "tl run: error: data.label_column: the training data '{dir}/one.tsv' holds a single class in label column 'label' ('pos'); a classifier needs at least two classes: add examples of the others, or check data.label_column",
    ],
    'run:eval file lacks the label column': [
        "tl run: error: data.label_column: column 'label' not in '{dir}/nolabel.tsv'. Columns there: text",
    ],
    'run:eval file lacks the text column': [
        "tl run: error: data.text_column: column 'text' not in '{dir}/notext.tsv'. Columns there: sentence, label",
    ],
    'run:ragged CSV row': [
        "tl run: error: data.train: '{dir}/ragged.tsv': line 10 has 3 fields where the header has 2 (delimiter '\\t'); fix that line, or quote a field that holds the delimiter",
    ],
    'run:ragged eval CSV row': [
        "tl run: error: data.eval: '{dir}/ragged.tsv': line 10 has 3 fields where the header has 2 (delimiter '\\t'); fix that line, or quote a field that holds the delimiter",
    ],
    'run:JSON in a column layout': [
        'tl run: error: data.train: \'{dir}/cols.json\': a single JSON object of 2 keys (text, label), not rows; the layouts read are JSON Lines (one object a line, e.g. {"text": ..., "label": ...}) or a JSON list of such objects; pandas writes JSON Lines with df.to_json(path, orient=\'records\', lines=True)',
    ],
    'run:JSON Lines with a broken line': [
        'tl run: error: data.train: \'{dir}/b.jsonl\': line 2 is not valid JSON (Expecting value); the layouts read are JSON Lines (one object a line, e.g. {"text": ..., "label": ...}) or a JSON list of such objects',
    ],
    'run:parquet file that is not parquet': [
        "tl run: error: data.train: could not read '{dir}/t.parquet' as parquet: ArrowInvalid: Parquet magic bytes not found in footer. Either the file is corrupted or this is not a parquet file.",
    ],
    'run:corrupt image': [
        "tl run: error: data.image_column: 1 images in '{dir}/img' cannot be read, first '{dir}/img/dog/broken.jpg' (UnidentifiedImageError: cannot identify image file '{dir}/img/dog/broken.jpg'); remove or replace them",
    ],
    'run:image folder without images': [
        'tl run: error: {dir}/nothing: no images found; expected <class>/<image> files such as cat/0001.jpg',
    ],
    'run:image folder of one class': [
        "tl run: error: data.label_column: the training data '{dir}/one' holds a single class in label column 'label' ('cat'); a classifier needs at least two classes: add examples of the others, or check data.label_column",
    ],
    'validate:missing image folder': [
        "tl validate: error: {dir}/recipe.yaml: data.eval: folder 'no-such-folder' not found; give a folder of <class>/<image> files",
    ],
    'validate:image folder is a file': [
        "tl validate: error: {dir}/recipe.yaml: data.train: '{dir}/f.png' is a file; format imagefolder reads a folder of <class>/<image> files: give that folder",
    ],
    'run:unknown digits split': [
        "tl run: error: data.train: format 'digits' has splits 'train' and 'test', not 'training'",
    ],
    'validate:image size below 8': [
        'tl validate: error: {dir}/recipe.yaml: data.image_size: Input should be greater than or equal to 8, got 4',
    ],
    'validate:hf without a name': [
        "tl validate: error: {dir}/recipe.yaml: data.name: format 'hf' needs a dataset id or a local dataset directory",
    ],
    'run:regression labels that are not numbers': [
        "tl run: error: data.train: label column 'label' of '{root}/train.tsv': 'neg' is not a number; data.task 'regression' needs numeric labels",
    ],
    'validate:unknown backbone plugin': [
        "tl validate: error: {dir}/recipe.yaml: backbone.plugin: Unknown backbone plugin 'berty'. Did you mean 'bert'? Registered backbone plugins: bert, resnet. Install a package that provides it (entry-point group 'tl_toolkit.backbones') or pick one of these.",
    ],
    'validate:missing local model directory': [
        "tl validate: error: {dir}/recipe.yaml: backbone.model: local model directory '{dir}/no-model' not found; give the folder holding the model's config.json, or a hub id such as 'bert-base-uncased'",
    ],
    'run:model directory without config': [
        "tl run: error: {dir}/recipe.yaml: backbone.model: local model directory '{dir}/m' holds no config.json; give the folder a model was saved to (save_pretrained: config.json + weights), or a hub id",
    ],
    'run:model directory with truncated weights': [
        'tl run: error: {dir}/recipe.yaml: backbone.model: {dir}/model/model.safetensors is truncated: it holds 140388 of the 280776 bytes its header describes (an interrupted copy or download?); replace it with a complete copy',
    ],
    'plan:model directory with truncated weights': [
        'tl plan: error: {dir}/recipe.yaml: backbone.model: {dir}/model/model.safetensors is truncated: it holds 140388 of the 280776 bytes its header describes (an interrupted copy or download?); replace it with a complete copy',
    ],
    'validate:missing weights file': [
        "tl validate: error: {dir}/recipe.yaml: backbone.weights: file 'absent.safetensors' not found",
    ],
    'run:weights file with wrong keys': [
        "tl run: error: backbone.weights: {dir}/other.safetensors does not fit 'resnet18': 120 missing, e.g. ['bn1.bias', 'bn1.weight', 'conv1.weight', 'layer1.0.bn1.bias']; 1 unexpected, e.g. ['encoder.block.0.weight']. Is it a checkpoint of another architecture?",
    ],
    'run:text weights file with wrong keys': [
        "tl run: error: backbone.weights: {dir}/other.safetensors does not fit '{root}/bert': missing ['bert.embeddings.word_embeddings.weight', 'bert.embeddings.position_embeddings.weight', 'bert.embeddings.token_type_embeddings.weight', 'bert.embeddings.LayerNorm.weight', 'bert.embeddings.LayerNorm.bias'], unexpected ['encoder.block.0.weight']",
    ],
    'run:weights file that is not weights': [
        'tl run: error: backbone.weights: {dir}/w.pth holds pickled Python objects, not only tensors (a whole model saved with torch.save(model)?); save model.state_dict() instead, or a .safetensors file',
    ],
    'run:truncated safetensors weights': [
        'tl run: error: backbone.weights: {dir}/other.safetensors is not a safetensors file, or is truncated (its header claims 80 bytes, the file holds 76); replace it with a complete copy',
    ],
    'run:safetensors that is not safetensors': [
        'tl run: error: backbone.weights: {dir}/w.safetensors is not a safetensors file (its header is not JSON); replace it',
    ],
    'run:pth holding a pickled module': [
        'tl run: error: backbone.weights: {dir}/module.pth holds pickled Python objects, not only tensors (a whole model saved with torch.save(model)?); save model.state_dict() instead, or a .safetensors file',
    ],
    'run:pth holding a list': [
        'tl run: error: backbone.weights: {dir}/list.pth holds a list, not a state dict',
    ],
    'run:unreadable weights file': [
        "tl run: error: backbone.weights: cannot read '{dir}/w.safetensors': permission denied; give yourself access (chmod/chown) or use another path",
    ],
    'validate:init_from a folder that is not a run': [
        "tl validate: error: {dir}/recipe.yaml: backbone.init_from: '{dir}/empty-run' holds no finished run (no model/tl_toolkit.json); finish that run first",
    ],
    'validate:init_from a run of another backbone': [
        "tl validate: error: {dir}/recipe.yaml: backbone.init_from: the source uses backbone 'resnet', this recipe 'bert'; a transfer keeps the architecture, so they must match",
    ],
    'validate:init_from a missing path': [
        "tl validate: error: {dir}/recipe.yaml: backbone.init_from: 'nowhere' not found; give a finished run's directory or a source recipe",
    ],
    'validate:init_from an invalid recipe': [
        "tl validate: error: {dir}/recipe.yaml: backbone.init_from: source recipe '{dir}/src.yaml' is invalid: {dir}/src.yaml: not valid YAML at line 1, column 8: expected the node content, but found '<stream end>'",
    ],
    'validate:backbone option of the wrong type': [
        "tl validate: error: {dir}/recipe.yaml: backbone.options.hflip: Input should be a valid number, unable to parse string as a number, got 'often'",
    ],
    'validate:unknown backbone option': [
        "tl validate: error: {dir}/recipe.yaml: backbone.options.trust_code: unknown option. Did you mean 'trust_remote_code'? Valid options: trust_remote_code, pooling",
    ],
    'run:unknown timm model': [
        "tl run: error: {dir}/recipe.yaml: backbone.model: unknown timm model 'resnet1800'. Did you mean 'resnet18'? See timm.list_models(), or give a directory saved by timm",
    ],
    'validate:unknown strategy plugin': [
        "tl validate: error: {dir}/recipe.yaml: strategy.plugin: Unknown strategy plugin 'lora2'. Did you mean 'lora'? Registered strategy plugins: bitfit, contrastive, distill, full, gradual-unfreeze, head-only, ia3, l2-sp, loha, lokr, lora, lp-ft. Install a package that provides it (entry-point group 'tl_toolkit.strategies') or pick one of these.",
    ],
    'run:LoRA target modules that do not exist': [
        "tl run: error: strategy.options.target_modules: ['qkv_proj'] match no module of bert:{root}/bert; e.g. query, value",
    ],
    'validate:LoRA rank of the wrong type': [
        "tl validate: error: {dir}/recipe.yaml: strategy.options.r: Input should be a valid integer, unable to parse string as an integer, got 'eight'",
    ],
    'validate:LoRA rank zero': [
        'tl validate: error: {dir}/recipe.yaml: strategy.options.r: Input should be greater than or equal to 1, got 0',
    ],
    'validate:unknown LoRA option': [
        'tl validate: error: {dir}/recipe.yaml: strategy.options.rank: unknown option. Valid options: target_modules, layer_decay, lr_ratio, r, alpha, dropout, use_dora, use_rslora, init_lora_weights, loraplus_lr_ratio',
    ],
    'validate:head-only given options': [
        "tl validate: error: {dir}/recipe.yaml: strategy.options: 'head-only' takes no options, got ['r']; remove strategy.options (see `tl list --verbose head-only`)",
    ],
    'run:head-only given options': [
        "tl run: error: {dir}/recipe.yaml: strategy.options: 'head-only' takes no options, got ['lr']; remove strategy.options (see `tl list --verbose head-only`)",
    ],
    'validate:unknown full option': [
        'tl validate: error: {dir}/recipe.yaml: strategy.options.r: unknown option. Valid options: layer_decay',
    ],
    'validate:layer decay above 1': [
        'tl validate: error: {dir}/recipe.yaml: strategy.options.layer_decay: Input should be less than or equal to 1, got 2',
    ],
    'validate:options given as a list': [
        'tl validate: error: {dir}/recipe.yaml: strategy.options: expected a section of keys, got [1]',
    ],
    'predict:a folder that is not a run': [
        'tl predict: error: {dir}/out: not a finished run (no model/tl_toolkit.json); give the output_dir of a completed `tl run`',
    ],
    'predict:a run folder that does not exist': [
        'tl predict: error: {dir}/gone: not a finished run (no model/tl_toolkit.json); give the output_dir of a completed `tl run`',
    ],
    'predict:missing input file': [
        'tl predict: error: absent.txt: no such input file or folder',
    ],
    'predict:empty text file': [
        'tl predict: error: {dir}/empty.txt: holds no examples (it is empty or blank); give one example a line',
    ],
    'predict:blank text file': [
        'tl predict: error: {dir}/blank.txt: holds no examples (it is empty or blank); give one example a line',
    ],
    'predict:CSV with a header only': [
        'tl predict: error: {dir}/h.csv: has a header line but no rows; add examples below the header',
    ],
    'predict:empty CSV': [
        'tl predict: error: {dir}/e.csv: is empty; give a file with a header line and one example a line',
    ],
    'predict:CSV without the text column': [
        "tl predict: error: {dir}/s.csv: no column 'text' (columns: sentence); choose the text column with --column",
    ],
    'predict:--column that is not there': [
        "tl predict: error: {root}/train.tsv: no column 'body' (columns: text, label); choose the text column with --column",
    ],
    'predict:image given to a text model': [
        "tl predict: error: {dir}/cat.png: is an image, but this run's model is a text model; give a text file (one example a line) or a CSV/TSV/JSONL/Parquet file",
    ],
    'predict:text given to an image model': [
        "tl predict: error: {dir}/s.txt: not an image file (suffix '.txt'); this run's model reads images (.bmp, .gif, .jpeg, .jpg, .png, .tif, .tiff, .webp) or folders of them",
    ],
    'predict:non-UTF-8 text file': [
        'tl predict: error: {dir}/l.txt: is not UTF-8 text (byte 0xe9 on line 1); re-save it as UTF-8',
    ],
    'predict:non-UTF-8 CSV': [
        'tl predict: error: {dir}/l.csv: is not UTF-8 text (byte 0xe9 at offset 14, line 2); re-save it as UTF-8',
    ],
    'predict:ragged CSV': [
        "tl predict: error: {dir}/r.tsv: line 10 has 3 fields where the header has 2 (delimiter '\\t'); fix that line, or quote a field that holds the delimiter",
    ],
    'predict:JSON Lines with a broken line': [
        'tl predict: error: {dir}/b.jsonl: line 2 is not valid JSON (Expecting value: line 1 column 10 (char 9)); one JSON object a line',
    ],
    'predict:--batch-size 0': [
        'tl predict: error: --batch-size: must be at least 1, got 0',
    ],
    'predict:--batch-size -3': [
        'tl predict: error: --batch-size: must be at least 1, got -3',
    ],
    'predict:--top-k 0': [
        'tl predict: error: --top-k: must be at least 1, got 0',
    ],
    'predict:--batch-size not a number': [
        "tl predict: error: argument --batch-size: invalid int value: 'x'",
    ],
    'predict:a folder given to a text model': [
        'tl predict: error: {dir}/texts: is a folder; a text model reads text files (one example a line) or CSV/TSV/JSONL/Parquet files',
    ],
    'predict:unreadable input': [
        'tl predict: error: {dir}/s.txt: cannot read it (permission denied; give yourself access (chmod/chown) or use another path)',
    ],
    'predict:--output in a missing folder': [
        "tl predict: error: --output: '{dir}/no/p.jsonl': No such file or directory (its folder '{dir}/no' does not exist); create the folder or choose another --output",
    ],
    'predict:--output is a folder': [
        "tl predict: error: --output: '{dir}/out' is a folder; give the path of a file to write",
    ],
    'predict:corrupt image': [
        "tl predict: error: {dir}/broken.jpg: cannot be read as an image (UnidentifiedImageError: cannot identify image file '{dir}/broken.jpg'); remove or replace it",
    ],
    'predict:parquet file that is not parquet': [
        "tl predict: error: {dir}/g.parquet: is not a readable Parquet file (Parquet magic bytes not found in footer); re-save it with pandas' to_parquet or pyarrow",
    ],
    'predict:image folder without images': [
        'tl predict: error: {dir}/none: no images found',
    ],
    'predict:truncated weights': [
        'tl predict: error: {dir}/run-text/model: {dir}/run-text/model/model.safetensors is truncated: it holds 140696 of the 281392 bytes its header describes (an interrupted copy or download?); replace it with a complete copy',
    ],
    'predict:truncated image weights': [
        'tl predict: error: {dir}/run-image/model: {dir}/run-image/model/model.safetensors is truncated: it holds 22379732 of the 44759464 bytes its header describes (an interrupted copy or download?); replace it with a complete copy',
    ],
    'predict:run metadata that is not JSON': [
        "tl predict: error: {dir}/run-text/model/tl_toolkit.json: not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1)); the run's model folder is damaged: restore it or run the recipe again",
    ],
    'predict:run of a plugin that is not installed': [
        "tl predict: error: Unknown backbone plugin 'gone'. Registered backbone plugins: bert, resnet. Install a package that provides it (entry-point group 'tl_toolkit.backbones') or pick one of these.",
    ],
    'predict:model folder without weights': [
        "tl predict: error: {dir}/run-text/model: the run's model cannot be loaded (Error no file named model.safetensors, or pytorch_model.bin, found in directory {dir}/run-text/model.); its files or weights are missing or damaged: restore the folder or run the recipe again",
    ],
    'eval:a folder that is not a run': [
        'tl eval: error: {dir}/out: not a finished run (no model/tl_toolkit.json); give the output_dir of a completed `tl run`',
    ],
    'eval:a run without recipe.yaml': [
        'tl eval: error: {dir}/run-text: recipe.yaml is missing; cannot tell which data the run used',
    ],
    'eval:missing eval file': [
        "tl eval: error: data.eval: file 'absent.tsv' not found; check the path (relative to {dir})",
    ],
    'eval:eval labels the model does not know': [
        "tl eval: error: data.eval: labels ['mixed'] in '{dir}/dev3.tsv' never occur in training data (training labels: ['neg', 'pos']); fix the eval labels or set data.classes",
    ],
    'eval:eval file without the label column': [
        "tl eval: error: data.label_column: column 'label' not in '{dir}/nolabel.tsv'. Columns there: text",
    ],
    'eval:empty eval file': [
        "tl eval: error: data.eval: file '{dir}/e.tsv' is empty; give a file with a header line and one example a line",
    ],
    'eval:non-UTF-8 eval file': [
        "tl eval: error: data.eval: file '{dir}/l.tsv' is not UTF-8 text (byte 0xe9 at offset 14, line 2); re-save it as UTF-8",
    ],
    'eval:ragged eval file': [
        "tl eval: error: data.eval: '{dir}/r.tsv': line 10 has 3 fields where the header has 2 (delimiter '\\t'); fix that line, or quote a field that holds the delimiter",
    ],
    'eval:unknown override key': [
        "tl eval: error: {root}/runs/text/recipe.yaml: unknown key 'data.evl'. Did you mean 'eval'? Valid keys in 'data': format, train, eval, name, config, text_column, text_pair_column, label_column, image_column, image_size, max_length, delimiter, classes, max_train_per_class, max_train_samples, max_eval_samples, eval_fraction, task, task_options, label_separator, threshold",
    ],
    "eval:override without '='": [
        "tl eval: error: override 'data.eval': expected KEY=VALUE with a dotted key, e.g. train.epochs=1",
    ],
    'eval:--batch-size 0': [
        'tl eval: error: --batch-size: must be at least 1, got 0',
    ],
    'eval:truncated weights': [
        'tl eval: error: {dir}/run-text/model: {dir}/run-text/model/model.safetensors is truncated: it holds 140696 of the 281392 bytes its header describes (an interrupted copy or download?); replace it with a complete copy',
    ],
    'eval:unreadable eval file': [
        "tl eval: error: data.eval: cannot read '{dir}/locked.tsv': permission denied; give yourself access (chmod/chown) or use another path",
    ],
    'eval:run folder that is read-only': [
        "tl eval: error: '{dir}/run-text/eval.json': permission denied; give yourself access (chmod/chown) or use another path",
    ],
    'export:a folder that is not a run': [
        'tl export: error: {dir}/out: not a finished run (no model/tl_toolkit.json); give the output_dir of a completed `tl run`',
    ],
    'export:a format the backbone cannot write': [
        "tl export: error: --format: backbone 'bert' cannot export to 'timm'; it exports to: hf, onnx",
    ],
    'export:an unknown format': [
        "tl export: error: --format: backbone 'bert' cannot export to 'tflite'; it exports to: hf, onnx",
    ],
    'export:LoRA run without --merge-lora': [
        "tl export: error: {root}/runs/lora/model: this run's model is a LoRA adapter (peft format, loadable as it is); pass --merge-lora to export a plain model with the adapters merged into its weights",
    ],
    'export:--output not empty': [
        'tl export: error: --output: {dir}/out already exists and is not empty; remove it or choose another --output',
    ],
    'export:--output is a file': [
        "tl export: error: --output: '{dir}/f' is a file, not a folder; choose another --output or remove the file",
    ],
    'export:--output under a file': [
        "tl export: error: --output: cannot create '{dir}/f/x': '{dir}/f' is a file, not a folder; choose another --output",
    ],
    'export:--output in a read-only folder': [
        "tl export: error: --output: cannot create '{dir}/locked/x': folder '{dir}/locked' is not writable (permission denied); choose a folder you can write to",
    ],
    'export:truncated weights': [
        'tl export: error: {dir}/run-text/model: {dir}/run-text/model/model.safetensors is truncated: it holds 140696 of the 281392 bytes its header describes (an interrupted copy or download?); replace it with a complete copy',
    ],
    'export:no format': [
        'tl export: error: the following arguments are required: --format',
    ],
    'compare:unknown strategy': [
        "tl compare: error: --strategies: unknown strategy 'fulll'. Did you mean 'full'? Choose from bitfit, contrastive, distill, full, gradual-unfreeze, head-only, ia3, l2-sp, loha, lokr, lora, lp-ft, scratch",
    ],
    'compare:recipe file missing': [
        'tl compare: error: {dir}/nope.yaml: recipe file not found; give the path of a .yaml recipe',
    ],
    'compare:invalid recipe': [
        "tl compare: error: {dir}/recipe.yaml: unknown key 'train.epoch'. Did you mean 'epochs'? Valid keys in 'train': epochs, batch_size, eval_batch_size, lr, optimizer, weight_decay, backbone_lr_ratio, scheduler, warmup_ratio, grad_accum_steps, max_grad_norm, mixed_precision, label_smoothing, num_workers, log_every_steps, keep_checkpoints, checkpoint_every_steps, best_metric, skip_nonfinite, compile, gradient_checkpointing, feature_cache, trackers, class_weights, group_by_length, length_group_batches, cpu_dropout, padding_free, ema, soup",
    ],
    'compare:missing data': [
        "tl compare: error: {dir}/recipe.yaml: data.train: file 'absent.tsv' not found; check the path (relative to {dir})",
    ],
    'compare:bad override': [
        "tl compare: error: {dir}/recipe.yaml: train.lr: Input should be a valid number, unable to parse string as a number, got 'fast'",
    ],
    'compare:--output is a file': [
        "tl compare: error: --output: '{dir}/f' is a file, not a folder; choose another --output or remove the file",
    ],
    'compare:--output in a read-only folder': [
        "tl compare: error: --output: cannot create '{dir}/locked/c': folder '{dir}/locked' is not writable (permission denied); choose a folder you can write to",
    ],
    'compare:a single class': [
        "tl compare: error: data.label_column: the training data '{dir}/one.tsv' holds a single class in label column 'label' ('pos'); a classifier needs at least two classes: add examples of the others, or check data.label_column",
    ],
    'compare:recipe unreadable': [
        "tl compare: error: '{dir}/r.yaml': permission denied; give yourself access (chmod/chown) or use another path",
    ],
    'sweep:no space to search': [
        'tl sweep: error: sweep.space: nothing to search; add dotted recipe keys, e.g. train.lr: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}',
    ],
    'sweep:--trials 0': [
        'tl sweep: error: --trials: must be at least 1, got 0',
    ],
    'wise-ft:alpha above 1': [
        'tl wise-ft: error: --alphas: give numbers between 0 and 1, e.g. 0,0.25,0.5,0.75,1; got [0.0, 2.0]',
    ],
    'wise-ft:alphas that are not numbers': [
        "tl wise-ft: error: --alphas: '0,x' is not a comma-separated list of numbers, e.g. 0,0.5,1",
    ],
    'plan:--steps 0': [
        'tl plan: error: --steps: must be at least 1, got 0',
    ],
    'plan:recipe file missing': [
        'tl plan: error: {dir}/nope.yaml: recipe file not found; give the path of a .yaml recipe',
    ],
    'plan:invalid recipe': [
        "tl plan: error: {dir}/recipe.yaml: train.lr: Input should be a valid number, unable to parse string as a number, got 'high'",
    ],
    'plan:missing data': [
        "tl plan: error: {dir}/recipe.yaml: data.eval: file 'absent.tsv' not found; check the path (relative to {dir})",
    ],
    'plan:missing model directory': [
        "tl plan: error: {dir}/recipe.yaml: backbone.model: local model directory '{dir}/nomodel' not found; give the folder holding the model's config.json, or a hub id such as 'bert-base-uncased'",
    ],
    'plan:init_from a source recipe not run yet': [
        'tl plan: error: backbone.init_from: the source recipe {dir}/src.yaml has no finished run in {dir}/src-run; tl plan trains nothing: run `tl run {dir}/src.yaml` first, or plan the source recipe itself',
    ],
    'plan:a single class': [
        "tl plan: error: data.label_column: the training data '{dir}/one.tsv' holds a single class in label column 'label' ('pos'); a classifier needs at least two classes: add examples of the others, or check data.label_column",
    ],
    'plan:ragged data': [
        "tl plan: error: data.train: '{dir}/r.tsv': line 10 has 3 fields where the header has 2 (delimiter '\\t'); fix that line, or quote a field that holds the delimiter",
    ],
    'plan:recipe is a folder': [
        'tl plan: error: {dir}/rd: recipe file not found (it is a directory); give the path of a .yaml recipe',
    ],
    'plan:head-only given options': [
        "tl plan: error: {dir}/recipe.yaml: strategy.options: 'head-only' takes no options, got ['r']; remove strategy.options (see `tl list --verbose head-only`)",
    ],
    'new-plugin:name with capitals': [
        "tl new-plugin: error: name 'MyAug' must start with a letter and use a-z, 0-9, '-' or '_'",
    ],
    'new-plugin:name starting with a digit': [
        "tl new-plugin: error: name '1aug' must start with a letter and use a-z, 0-9, '-' or '_'",
    ],
    'new-plugin:name with a dot': [
        "tl new-plugin: error: name 'my.aug' must start with a letter and use a-z, 0-9, '-' or '_'",
    ],
    'new-plugin:folder exists': [
        'tl new-plugin: error: {dir}/myaug already exists; choose another name or remove it',
    ],
    'new-plugin:unknown kind': [
        "tl new-plugin: error: argument --kind: invalid choice: 'dataset' (choose from 'strategy', 'backbone', 'task')",
    ],
    'new-plugin:no kind': [
        'tl new-plugin: error: the following arguments are required: --kind',
    ],
    'new-plugin:--output is a file': [
        "tl new-plugin: error: --output: '{dir}/f' is a file, not a folder; choose another --output or remove the file",
    ],
    'new-plugin:--output in a read-only folder': [
        "tl new-plugin: error: --output: folder '{dir}/locked' is not writable (permission denied); choose a folder you can write to",
    ],
    'new-plugin:--output that cannot be created': [
        "tl new-plugin: error: --output: '/proc/tl' cannot be created ('/proc': No such file or directory; check the path); choose another --output",
    ],
    'list:--verbose of an unknown plugin': [
        "tl list: error: --verbose: no plugin named 'lorra'. Did you mean 'lora'?",
    ],
}
