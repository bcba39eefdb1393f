# Common Voice: the directory of an extracted release (the folder holding <locale>/ with
# train.tsv, dev.tsv, test.tsv, validated.tsv and clips/). Empty: stage 0 synthesises a
# small corpus in the same layout (python -m espnet_s3net.bin.synth_cv).
COMMONVOICE=${COMMONVOICE:-}
