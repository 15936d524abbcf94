"""Data directory and the registry of data sources (files, sha256, licence, how to obtain).

The data directory is the one setting: ``LSDKIT_DATA`` or an explicit argument (``--data DIR``).
It holds one folder per source, laid out as below; each source's ``PROVENANCE.md`` (beside its
files) tells where every file came from and how it was made::

    $LSDKIT_DATA/
        swissprot2014_go_metastudent/swissprot2014_sequences.fasta.xz ...
        deeploc1/deeploc_test_set.fasta.xz ...

Every source need not be present: a machine holds the ones it uses, ``lsdkit data check`` verifies
them (sha256) and ``lsdkit data fetch NAME`` downloads or explains how to obtain a missing one.

lsdkit also ships a tiny data directory of its own (:func:`default_data_dir`) with one *bundled*
source, ``swissprot2014_sample`` (3,000 real Swiss-Prot 2014 sequences + GO terms, see
``lsdkit/data/bundle.py``), so that a fresh machine with no data at all can run the pipeline;
:func:`corpus_fasta` falls back to it.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from lsdkit.data.bundle import FULL_FASTA, FULL_SOURCE, SAMPLE_FASTA, SAMPLE_GO, SAMPLE_SOURCE
from lsdkit.errors import LsdkitError

ENV_VAR = "LSDKIT_DATA"
BUNDLED_DIR = Path(__file__).resolve().with_name("bundled")


class DataError(LsdkitError, RuntimeError):
    """A data directory or source file is missing, corrupt or malformed; the message says which."""


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The data directory: ``explicit`` if given, else ``$LSDKIT_DATA``; it must exist."""
    value = explicit if explicit is not None else os.environ.get(ENV_VAR)
    if not value:
        raise DataError(f"no data directory: pass one explicitly (--data DIR) or set {ENV_VAR}")
    path = Path(value).expanduser()
    if not path.is_dir():
        raise DataError(f"data directory {str(path)!r} does not exist or is not a directory")
    return path


def configured_data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """Like :func:`data_dir`, but ``None`` (instead of an error) when no directory is configured."""
    if explicit is None and not os.environ.get(ENV_VAR):
        return None
    return data_dir(explicit)


def default_data_dir() -> Path:
    """The data directory shipped inside lsdkit (holds the bundled ``swissprot2014_sample``)."""
    if not (BUNDLED_DIR / SAMPLE_SOURCE / SAMPLE_FASTA).is_file():
        raise DataError(f"the bundled data directory {BUNDLED_DIR} lacks {SAMPLE_SOURCE}/{SAMPLE_FASTA}: "
                        "lsdkit was installed without its package data (reinstall from a full checkout)")
    return BUNDLED_DIR


@dataclass(frozen=True)
class Source:
    """One folder of the data directory: its files with sha256 and size, and where it comes from.

    ``obtain`` is the recipe for a machine with internet; ``urls`` maps the files that can be
    downloaded as they are (byte for byte) to their URL, so ``lsdkit data fetch`` can verify them.
    ``bundled`` sources ship inside lsdkit (see :func:`default_data_dir`).
    """

    name: str
    folder: str
    files: dict[str, str]          # filename -> sha256 (hex)
    licence: str
    citation: str
    obtain: str
    description: str
    sizes: dict[str, int] = field(default_factory=dict)   # filename -> bytes
    urls: dict[str, str] = field(default_factory=dict)    # filename -> direct download URL
    bundled: bool = False

    def __post_init__(self):
        if set(self.sizes) != set(self.files):
            raise ValueError(f"source {self.name!r}: sizes and sha256 must list the same files")
        if set(self.urls) - set(self.files):
            raise ValueError(f"source {self.name!r}: URLs for unknown files {sorted(set(self.urls) - set(self.files))}")

    @property
    def total_size(self) -> int:
        return sum(self.sizes.values())


def _source(name: str, files: dict[str, tuple[str, int]], **kw) -> Source:
    """Registry shorthand: ``files`` maps filename -> (sha256, size); the folder is the name."""
    return Source(name=name, folder=name, files={f: h for f, (h, _) in files.items()},
                  sizes={f: n for f, (_, n) in files.items()}, **kw)


_GH = "https://raw.githubusercontent.com"
_FLIP = f"{_GH}/J-SNACKKB/FLIP/62cace8735f5610e2743cf06ce0f944b37fffaa6/splits"
_SES = f"{_GH}/tyang816/SES-Adapter/ec5bf619d665435c161493402495f89c95a2e756/dataset"
_SES_TASKS = ("BP", "CC", "DeepLocBinary", "DeepLocMulti", "DeepSol", "DeepSoluE", "EC", "MF",
              "MetalIonBinding", "Thermostability")
_SEE = "Exact steps and any post-processing: the source's PROVENANCE.md."

_REGISTRY = [
    _source("swissprot2014_go_metastudent", {
        "go_graph.txt.xz": ("74fde46a998a21664e89038214ac78731b858fb4fad658719bb5f0a6433a28bc", 230856),
        "go_term_names.tsv.xz": ("575a5f9fc754f0444b61c1d5e2cb1727bbbf62ab322d426c3974622eb7baa6fb", 281208),
        "swissprot2014_go_annotations.tsv.xz": ("5e07edbddd5815a51b8288b8c2b759f164b060019aee696a06ca88bdff651e8e", 3756300),
        "swissprot2014_sequences.fasta.xz": ("9622f160354d35059a53cee4eb19336b84cc58a6329bfa0d4bf8db3f5aff86e2", 51726196)},
        licence="GPL-2+ (Debian metastudent-data); sequences/GO: UniProt CC BY 4.0",
        citation="Hamp et al. 2013, BMC Bioinformatics 14(Suppl 3):S7 (metastudent); UniProt Consortium; GO Consortium",
        obtain="apt-get download metastudent-data (Debian main, 2.0.1-8; or https://deb.debian.org/debian/pool/main/"
               "m/metastudent-data/metastudent-data_2.0.1-8_all.deb); dpkg -x it; dump the BLAST databases "
               "dataset_201401/{BPO,MFO,CCO}/goasp.fasta with `blastdbcmd -entry all -outfmt '%t\\t%s'` "
               "(ncbi-blast+) and write FASTA + GO table, xz-compressed. " + _SEE,
        description="516,371 Swiss-Prot (Jan 2014) sequences + GO BP/MF/CC annotations: the pre-training corpus"),
    _source("uniprot20k_mmseqs2_examples", {
        "DB.fasta.gz": ("92a65aa435f5d3e0f33eb47d87910fe7fc6033a28bf4ed1367094377d791d567", 6548881),
        "QUERY.fasta.gz": ("a754e5ba84348d8c3a98c11c468c8c63a3a7a8d3557ac0be42f439d01d78334d", 176351)},
        licence="GPL-3 (Debian mmseqs2-examples); sequences: UniProt CC BY 4.0",
        citation="Steinegger & Soding 2017, Nat Biotechnol 35:1026 (MMseqs2); UniProt Consortium",
        obtain="apt-get download mmseqs2-examples (Debian, 14-7e284+ds-1); dpkg -x mmseqs2-examples_*.deb x; "
               "copy x/usr/share/doc/mmseqs2/example-data/{DB,QUERY}.fasta.gz unchanged",
        description="20,000 UniProtKB (mostly TrEMBL) + 500 query sequences: a small smoke-test corpus"),
    _source("deeploc2", {
        "deeploc2_swissprot_5partitions.csv.xz": ("1a8cc4c76eba76612b745797a70ff03a5b60213e7b2b747aaa7ed297ffe3c023", 7252768)},
        licence="no licence file in the source repo; DeepLoc 2.0 data from UniProt (CC BY 4.0) and HPA: cite DeepLoc 2.0",
        citation="Thumuluri et al. 2022, Nucleic Acids Res 50(W1):W228 (DeepLoc 2.0)",
        obtain="https://github.com/bivekpok/esm_deeploc/tree/02c829f1d1339767e21336dc44d5e76cc19ecc47/cv_splits_deeploc: "
               "concatenate Outer_Fold_{1..5}/Inner_Fold_1/valid_manifest.csv (header once), xz. " + _SEE,
        description="DeepLoc 2.0: 28,303 Swiss-Prot sequences, 10 locations (multi-label), 5 homology partitions"),
    _source("deeploc1", {
        "deeploc1_annotations_bio_embeddings.csv.xz": ("bf0f2e3398ee86b58435693c49ca3aec7593f5b0557f4b7be0a7bd68b1a89b39", 49884),
        "deeploc1_reconstructed.csv.xz": ("6007e143c53357eaaa3dae0f6e59e5dfddfad14239f0dae1c6ccccf06e03fda5", 3648052),
        "deeploc_our_val_set.fasta.xz": ("73aeadb38c5563301f6895f442e7f5d8aa61fd750fb195c01b5835992275cc26", 489260),
        "deeploc_test_set.fasta.xz": ("175640b94fe2bcd84e98f5d82c64d90e4aeeac8117de66164d511f7da8764f4c", 776840),
        "setHARD.fasta.xz": ("b39688adf13cf149e4645a96811ccaab79a3407d1e8c00d6dcf33d35d8457359", 140392)},
        licence="MIT (LightAttention and bio_embeddings repos); sequences: UniProt CC BY 4.0",
        citation="Almagro Armenteros et al. 2017, Bioinformatics 33:3387 (DeepLoc); Stark et al. 2021, "
                 "Bioinformatics Advances (Light Attention)",
        obtain="https://github.com/HannesStark/protein-localization/tree/7b0be1e64a91db8ad1a8feae994a4d09aa9d7b1b/data_files "
               "(the 3 FASTA files, xz) and https://github.com/sacdallago/bio_embeddings/blob/"
               "efb9801f0de9b9d51d19b741088763a7d2d0c3a2/examples/deeploc/deeploc_annotations.csv (xz); "
               "deeploc1_reconstructed.csv is built from these + swissprot2014_go_metastudent + deeploc2. " + _SEE,
        description="DeepLoc 1.0: 14,004 labelled proteins (train 11,231 / test 2,773), 10 locations, membrane/soluble"),
    _source("saprot_tasks_valid_test_sesadapter", {
        "BP_ESMFold_config.json": ("e782585ff8a7b94865c4f4ecf46ab9f0fc3448bca18bd3d3445ffb40cda24f1d", 350),
        "BP_valid.json.xz": ("096cf85441baefd8a3cbece93e6e2c56c444f2b43793753975e6103ef024496d", 762764),
        "CC_ESMFold_config.json": ("2a607a773ca4c76289c19c99b004b18564b94bf4fc8808532ac5ff7477e79815", 349),
        "CC_test.json.xz": ("2acac1610bc902ed38009bec8d9e553ce3e008839b081da18ec65aaedfb44e75", 1200476),
        "CC_valid.json.xz": ("bcad36f98c27d9c3dfb4bce9d599e7df543703e1cf6489c4cfd66d95dfe4fb93", 336124),
        "DeepLocBinary_ESMFold_config.json": ("c3622ec6ec07bc4c88d078a6a4bb3931b28711b848de6e165b5d657524542e12", 396),
        "DeepLocBinary_test.json.xz": ("1726ef994cb360f6498f04e8e90e4cf661ec41661ce6bbadc959d08d524a8be1", 860140),
        "DeepLocBinary_valid.json.xz": ("86fca6f8613d48e7584b00ca660800e079c91333d8d6ef872689c714bc4b31e1", 519156),
        "DeepLocMulti_ESMFold_config.json": ("ae3c66320d5a3ebbd783b6098d5df8e792597025251c2b357961c5756b28bcb6", 393),
        "DeepLocMulti_valid.json.xz": ("c02fd044d03723c285c1d328b4eb70f9cf5919bba1c52bd3ac991bc3f55596b0", 884564),
        "DeepSol_ESMFold_config.json": ("0487cdaf253e581a4b6ee5bff54a6ac59c312b717b8f01f48272ce92f5e19b42", 372),
        "DeepSol_test.json.xz": ("044cc2715143ea2a8c622886e4bcfc4177c5308797701e20c9e863106c21f16e", 686016),
        "DeepSoluE_ESMFold_config.json": ("41fa9073e5409afece3c01a27d36dea872dd6c563f71f2d5b6644e68fb08aad8", 380),
        "DeepSoluE_test.json.xz": ("1ff3fd4a9e768157db17a38d1bf406d9be91000ae367db52cc39f04f2a9e303a", 841824),
        "DeepSoluE_valid.json.xz": ("301637f714207b640915e5efcc77ebd78809e1ebbd18a9b779cfefcab3fedc98", 505196),
        "EC_ESMFold_config.json": ("6edb09e670f80865b1bc01ba3f378e129b3090772f4fda7ad772fca8654f9cbf", 349),
        "EC_test.json.xz": ("518cab0147bf5b43d5a65fd006c16a7db1d85fd249f68ee675d58950a1498790", 469864),
        "EC_valid.json.xz": ("6e78833494997f4b9bdca7bfe05a7f6749a1ef2507adb3575ac68c2e98f5092b", 497076),
        "MF_ESMFold_config.json": ("85386a1642858bec9b9318d616fff9cd785fa4a55f42467788eacd1994f833b9", 349),
        "MF_test.json.xz": ("580a0b45ac0b2fb5bb20bceb2589e616cd8db1e58eb8ad95dfd594f26bda661c", 1199460),
        "MF_valid.json.xz": ("a5d39a7592ec472b8b889f77422103d374dc3edabd5c8f69efae10fad47027e5", 802392),
        "MetalIonBinding_ESMFold_config.json": ("ded79fef1c0d6fb1bc63ca35f0616cbddbda7fa343dc8f11d75fe569df9a9936", 404),
        "MetalIonBinding_test.json.xz": ("63484e717c84380c2074a14d615612229a4a5d5fb9f2aa32e1f9ffe8b1e9bd76", 164844),
        "MetalIonBinding_valid.json.xz": ("cb9ab709b0cc0f4e0fd330d1555820051cdd635d55e0a4671adedc335987271b", 184072),
        "Thermostability_ESMFold_config.json": ("962a85369f5828a174817f11228e2c531ba7fbc6b29eb5dcf02bbb5c432f6f3c", 400),
        "Thermostability_test.json.xz": ("c25a46d2914d7ab15f00b3733646c83db67ef7b995ad3841b359b802bb0a5798", 818156),
        "Thermostability_valid.json.xz": ("ef55f2213c9a116637f1df0aa07f1a2127391c44ae578724d1a68d2b448d66c3", 384424)},
        licence="CC BY-NC-ND 4.0 (SES-Adapter repo): non-commercial, keep the files unmodified",
        citation="Su et al. 2024, ICLR (SaProt); Tan et al. 2024, J Chem Inf Model (SES-Adapter)",
        obtain=f"{_SES}/<Task>/ESMFold/{{valid,test}}.json (xz-compressed here) and {_SES}/<Task>/<Task>_ESMFold.json "
               "(saved as <Task>_ESMFold_config.json); repo https://github.com/tyang816/SES-Adapter. " + _SEE,
        urls={f"{t}_ESMFold_config.json": f"{_SES}/{t}/{t}_ESMFold.json" for t in _SES_TASKS},
        description="official SaProt valid/test sets: Thermostability, MetalIonBinding, EC, GO, DeepLoc, DeepSol"),
    _source("flip", {
        "bind_splits.zip": ("f742c8b3e4521d7e771ca03096484451287026fe433b34463cbfcf767e0a7417", 277995),
        "conservation_splits.zip": ("9b364ba2a378a7abd9b8cf992d38c61b33dff17854fe37997760c8972ce921c5", 2944633),
        "gb1_5LDE_1.fasta": ("0316a39393885ff3337c43fd885286d0d1517b8c26d6bf03572893298005d03b", 374),
        "gb1_four_mutations_full_data.csv.zip": ("85692d808dcd3ae54fa2ac31f4e590858d4582369b6c7b05df299b9b6c383bff", 2659007),
        "gb1_splits.zip": ("00a3c3d5be56ce35adfbec838db8ff549be369525e151a6978133da34b9fd86f", 1241473),
        "secondary_structure_splits.zip": ("2e9bbbfd18a055bcac7edd4e059a6bf4bb35ca3ad8f8fa4fc3106422652a4726", 2321037)},
        licence="AFL-3.0 (FLIP splits); raw data CC BY 4.0 / per publication",
        citation="Dallago et al. 2021, NeurIPS Datasets and Benchmarks (FLIP)",
        obtain=f"{_FLIP}/<task>/<file> (file name here = path with '/' -> '_'), copied byte for byte",
        urls={"bind_splits.zip": f"{_FLIP}/bind/splits.zip",
              "conservation_splits.zip": f"{_FLIP}/conservation/splits.zip",
              "gb1_5LDE_1.fasta": f"{_FLIP}/gb1/5LDE_1.fasta",
              "gb1_four_mutations_full_data.csv.zip": f"{_FLIP}/gb1/four_mutations_full_data.csv.zip",
              "gb1_splits.zip": f"{_FLIP}/gb1/splits.zip",
              "secondary_structure_splits.zip": f"{_FLIP}/secondary_structure/splits.zip"},
        description="FLIP GB1 fitness splits (+149k full data), binding, conservation, secondary structure"),
    _source("proteingym_v0.1_singlesite", {
        "ProteinGym_v1_reference_DMS_substitutions.csv": ("a8f498011532a74aa9fe556a50555a75e928c5837d19c06a87592ae04049b308", 208734),
        "proteingym_v0.1_singlesite_substitutions.csv.xz": ("21fe2f152dce6450d91d4a933165dfa94068a6efaff989c6c9e841b1a445f49b", 2538220),
        "proteingym_v0.1_singlesite_wildtypes.fasta": ("3174e8ac776eeedc13dbe66c77210752dd68f6e565158fe3da327e7cbe2f9080", 50611)},
        licence="MIT (ProteinGym; SingleSiteProteinGYM repo)",
        citation="Notin et al. 2023, NeurIPS Datasets and Benchmarks (ProteinGym)",
        obtain="https://github.com/ginnm/SingleSiteProteinGYM/tree/9844690432e30a6fc0d79b29a03822787405e20a/gym_single "
               "(mutant/<DMS_id>.csv combined with a DMS_id column, fasta/<DMS_id>.fasta concatenated). " + _SEE,
        urls={"ProteinGym_v1_reference_DMS_substitutions.csv":
              f"{_GH}/OATML-Markslab/ProteinGym/bb685245f8f4bb95a5b54b470396c23826cd6284/reference_files/DMS_substitutions.csv"},
        description="87 ProteinGym single-substitution DMS assays (358,080 variants) + wild types + v1 reference"),
    _source("gfp_sarkisyan2016", {
        "amino_acid_genotypes_to_brightness.tsv.xz": ("b0d4069629f73a4da7ed77bec50891ef47f016e1fa5f85aaeaa35f4bf8806efc", 643120),
        "avGFP_wildtype.fasta": ("d73fb0da3c463e82f1d60eac0bbad091742a0d7077da420f9cfd65d4ef99fc44", 366)},
        licence="GPL-3.0 (Orthologous_GFP_Fitness_Peaks repo); original data Sarkisyan et al. (figshare)",
        citation="Sarkisyan et al. 2016, Nature 533:397 (avGFP local fitness landscape)",
        obtain="https://github.com/aequorea238/Orthologous_GFP_Fitness_Peaks/blob/799bd76889918bf1551c60016fb23278024cac73/"
               "analysis/ML/_02_RawData/amino_acid_genotypes_to_brightness.tsv (xz); wild type from ProteinGym "
               "GFP_AEQVI_Sarkisyan_2016. " + _SEE,
        description="54,025 avGFP genotypes with brightness (the TAPE fluorescence source) + wild type"),
    _source("meltome_atlas_deepstabp", {
        "meltome_tm_by_experiment.csv.xz": ("7ca293f9dd8722686d2dede783c1b4e0fb2609048dbb3248eb64e7041309e883", 2447040)},
        licence="MIT (DeepSTABp, (c) 2020 DataPLANT); measurements Jarzab et al. 2020",
        citation="Jarzab et al. 2020, Nat Methods 17:495 (Meltome atlas); Jung et al. 2023 (DeepSTABp)",
        obtain="https://github.com/yenlin-chen/ai-thermostability/tree/d4c126ea0ee717ebc0cda85879186d6d752ff0e7/"
               "data/external/DeepSTABp/Melting_temperatures_of_proteins (21 CSVs combined with an experiment "
               "column, xz). " + _SEE,
        description="52,387 Meltome-atlas melting temperatures by experiment (no sequences: join by accession)"),
    _source("clean_ec", {
        "new392.csv": ("33e1ff5356c206b99449b3b2a3903bff41b1f30317be057f66f821d32534e259", 186949),
        "price149.csv": ("670924baf57826eafb43a3264ba2bc01a74caa72ced73279f1cc64f13ef2adc8", 61952),
        "split10.csv.xz": ("b5c831b80a2981142bdeccb643f9efea2528e9a933ae8e9cd0ff70152e1ffac3", 1954484)},
        licence="CLEAN non-exclusive research-use licence; sequences/EC: UniProt CC BY 4.0",
        citation="Yu et al. 2023, Science 379:1358 (CLEAN)",
        obtain="https://github.com/tttianhao/CLEAN/tree/f2bf2a4f497fa2cc87dac2a1bb314fee587c0a15/app/data: "
               "split10.csv (xz), new.csv -> new392.csv, datasets/price.csv -> price149.csv. " + _SEE,
        description="CLEAN EC data: split10 (7,757 Swiss-Prot enzymes), New-392 and Price-149 test sets"),
    _source("ppi_guo_yeast_pipr", {
        "protein.actions.tsv.xz": ("3d90a4cc188e96a95db6838052a184f05b49e64ebe21ecf10094e7a6cdb0379c", 40468),
        "protein.dictionary.tsv.xz": ("a6e14fd0d7fa443af7e4122bd628231916b36abdf7d768a51e6f3b0c24671530", 748144)},
        licence="Apache-2.0 (PIPR repo)",
        citation="Guo et al. 2008, Nucleic Acids Res 36:3025; Chen et al. 2019, Bioinformatics 35:i305 (PIPR)",
        obtain="https://github.com/muhaochen/seq_ppi/tree/9172fbdc9a9bd9c0c1234bde3314ae0b6bff8dd0/yeast/preprocessed "
               "(protein.actions.tsv, protein.dictionary.tsv, xz-compressed unchanged)",
        description="Guo 2008 yeast PPI: 11,188 balanced pairs + 2,497 sequences"),
    _source("ppi_dscript", {
        "ecoli.fasta.xz": ("6ca1e91618e000e636993d7082cb405754e105b755ea9d64e1e33eefb90634ca", 688664),
        "ecoli_test.tsv.xz": ("d7c07a17f78f13aee938ba45f306bbaa4ca8ec71d2ded0bbbf42e58c483e7df6", 82920),
        "yeast.fasta.xz": ("d17a55e01871685db663f5737a5056ca678f23cec3a5f11277399b6d82cae93f", 1023296),
        "yeast_test.tsv.xz": ("645cf4f7eed263ea8d56a82f4c1c6681842061827122ef6806c4fb037a00ae2a", 259756)},
        licence="MIT (D-SCRIPT repo); STRING-derived pairs",
        citation="Sledzieski et al. 2021, Cell Systems 12:969 (D-SCRIPT)",
        obtain="https://github.com/samsledje/D-SCRIPT/tree/b1957f109baef2f372c162fea65320416afa08d1/data "
               "(pairs/{yeast,ecoli}_test.tsv, seqs/{yeast,ecoli}.fasta, xz-compressed unchanged)",
        description="D-SCRIPT yeast (55,000 pairs) and E. coli (22,000 pairs) PPI test sets + sequences"),
    _source(SAMPLE_SOURCE, {
        SAMPLE_FASTA: ("8d108d8a87bf7f8919f938d3f88f7e34077dbd5fdbd63fc43769d819267fbf69", 405484),
        SAMPLE_GO: ("4dc19ff20e49af3780a0ab0bfb91bc797e9b524cb30f7d308c10acae09886842", 37896)},
        licence="GPL-2+ (derived from Debian metastudent-data); sequences/GO: UniProt CC BY 4.0",
        citation="as swissprot2014_go_metastudent",
        obtain="ships with lsdkit (lsdkit/data/bundled); rebuild byte for byte with "
               "`lsdkit data make-sample --data FULL_DATA_DIR --to DIR` from swissprot2014_go_metastudent",
        urls={f: (BUNDLED_DIR / SAMPLE_SOURCE / f).as_uri() for f in (SAMPLE_FASTA, SAMPLE_GO)},
        bundled=True,
        description="bundled default sample: 3,000 Swiss-Prot 2014 sequences (30..512 aa) + GO terms"),
]
SOURCES: dict[str, Source] = {s.name: s for s in _REGISTRY}


def get_source(name: str) -> Source:
    """The registered source called ``name``; the error lists the known names."""
    try:
        return SOURCES[name]
    except KeyError:
        raise DataError(f"unknown data source {name!r}; known: {', '.join(SOURCES)}") from None


def path(source: str | Source, filename: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The path of one file of a source, which must exist.

    Looks in ``data_dir`` (default ``$LSDKIT_DATA``); a bundled source not found there is taken
    from :func:`default_data_dir`. Raises :class:`DataError` naming the source, file and directory.
    """
    src = get_source(source) if isinstance(source, str) else source
    if filename not in src.files:
        raise DataError(f"source {src.name!r} has no file {filename!r}; its files: {', '.join(src.files)}")
    try:
        root = configured_data_dir(data_dir)
    except DataError as exc:
        raise DataError(f"source {src.name!r}, file {filename!r}: {exc}") from None
    if root is not None and (root / src.folder / filename).is_file():
        return root / src.folder / filename
    if src.bundled:
        return default_data_dir() / src.folder / filename
    if root is None:
        raise DataError(f"source {src.name!r}, file {filename!r}: no data directory; pass one "
                        f"(data_dir=, --data DIR) or set {ENV_VAR}")
    raise DataError(f"source {src.name!r}: file {filename!r} is missing from data directory {str(root)!r} "
                    f"(looked for {root / src.folder / filename}); get it with "
                    f"`lsdkit data fetch {src.name} --to {root}`, or see `lsdkit data list`")


def corpus_fasta(data_dir: str | os.PathLike | None = None) -> Path:
    """The pre-training FASTA: the full Swiss-Prot 2014 corpus if the data directory has it, else
    the sample (the data directory's own copy, or the bundled one).

    With no data directory configured the bundled sample is the documented default; when a data
    directory is configured but lacks the corpus, a warning says that the sample is used instead.
    """
    root = configured_data_dir(data_dir)
    if root is not None:
        for folder, name in ((FULL_SOURCE, FULL_FASTA), (SAMPLE_SOURCE, SAMPLE_FASTA)):
            if (root / folder / name).is_file():
                return root / folder / name
        warnings.warn(f"data directory {str(root)!r} has no {FULL_SOURCE}/{FULL_FASTA}: using the bundled "
                      f"sample of 3,000 sequences instead", stacklevel=2)
    return default_data_dir() / SAMPLE_SOURCE / SAMPLE_FASTA
