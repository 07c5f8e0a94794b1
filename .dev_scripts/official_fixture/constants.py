"""Constants of the official-fixture harness: the official sources, the
patches applied to them (width constants only), what the harness records."""
from __future__ import annotations



OFFICIAL_REPO_NAME = 'yxchng/mask-grounding'
SOURCE_DIRS = ('lib/', 'bert/', 'modeling/')
SOURCE_FILES = ('test.py', )
DEPS = ('fvcore==0.1.5.post20221221', 'requests', 'urllib3', 'idna',
        'charset_normalizer', 'certifi', 'yacs', 'tabulate', 'iopath',
        'portalocker')
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CLS_ID, SEP_ID = 101, 102


# --------------------------------------------------------------------------
# patches: (file, old, new, expected number of occurrences of ``old``);
# every occurrence is replaced and the count is asserted.
# --------------------------------------------------------------------------
_P1_NEW = '''try:
    from .mmcv_custom import load_checkpoint
except ImportError:  # mmcv / torchvision not available
    def load_checkpoint(*args, **kwargs):
        raise RuntimeError('load_checkpoint needs mmcv (not installed)')
'''
_C3_NEW = '''    elif args.swin_type == 'custom':
        embed_dim = args.embed_dim
        depths = list(args.depths)
        num_heads = list(args.num_heads)
    elif args.swin_type == 'large':'''

PATCHES = [
    dict(id='P1', file='lib/backbone.py',
         change='`from .mmcv_custom import load_checkpoint` wrapped in '
                'try/except ImportError; fallback load_checkpoint raises '
                'RuntimeError',
         why='lib/mmcv_custom/checkpoint.py imports torchvision and mmcv at '
             'module level; load_checkpoint is only called by init_weights('
             'pretrained=<path>), which test.py never does (pretrained="").',
         edits=[('from .mmcv_custom import load_checkpoint\n', _P1_NEW, 1)]),
    dict(id='C1', file='lib/backbone.py',
         change='new kwarg lang_dim=768 on MultiModalSwinTransformer and '
                'MMBasicLayer (passed through); the two hard-coded PWAM '
                'l_in_channels=768 (layers[i].fusion and '
                'layers[i].fusions[j]) now use lang_dim',
         why='language width constant; default 768 keeps the full-size '
             'model identical',
         edits=[
             ('                 num_heads_fusion=[1, 1, 1, 1],\n'
              '                 fusion_drop=0.0\n                 ):',
              '                 num_heads_fusion=[1, 1, 1, 1],\n'
              '                 fusion_drop=0.0,\n'
              '                 lang_dim=768\n                 ):', 1),
             ('                 num_heads_fusion=1,\n'
              '                 fusion_drop=0.0\n                 ):',
              '                 num_heads_fusion=1,\n'
              '                 fusion_drop=0.0,\n'
              '                 lang_dim=768\n                 ):', 1),
             ('                num_heads_fusion=num_heads_fusion[i_layer],\n'
              '                fusion_drop=fusion_drop\n            )',
              '                num_heads_fusion=num_heads_fusion[i_layer],\n'
              '                fusion_drop=fusion_drop,\n'
              '                lang_dim=lang_dim\n            )', 1),
             ('768,  # l_in', 'lang_dim,  # l_in', 2),
         ]),
    dict(id='C2', file='lib/multimodal_swin.py',
         change='new kwarg lang_dim=768 on MultiModalSwin, passed to '
                'MultiModalSwinTransformer',
         why='plumbing for C1',
         edits=[
             ('                 num_heads_fusion=[1, 1, 1, 1],\n'
              '                 fusion_drop=0.0\n                 ):',
              '                 num_heads_fusion=[1, 1, 1, 1],\n'
              '                 fusion_drop=0.0,\n'
              '                 lang_dim=768\n                 ):', 1),
             ('                         fusion_drop=fusion_drop\n'
              '                         )',
              '                         fusion_drop=fusion_drop,\n'
              '                         lang_dim=lang_dim\n'
              '                         )', 1),
         ]),
    dict(id='C3', file='lib/multimodal_segmentation.py',
         change="_segm_lavt: extra branch swin_type=='custom' reading "
                'args.embed_dim/depths/num_heads; passes lang_dim=getattr('
                "args,'lang_dim',768) to MultiModalSwin",
         why='the Swin sizes are a hard-coded table (tiny/small/base/large); '
             'needed for the tiny model',
         # only the first occurrence (in _segm_lavt) is patched, see below
         edits=[("    elif args.swin_type == 'large':", _C3_NEW, 2),
                ('backbone = MultiModalSwin(embed_dim=embed_dim,',
                 "backbone = MultiModalSwin(lang_dim=getattr(args, "
                 "'lang_dim', 768), embed_dim=embed_dim,", 1)],
         first_only=("    elif args.swin_type == 'large':", )),
    dict(id='C4', file='bert/multimodal_bert.py',
         change='new kwarg lang_dim=768 on MultiModalBert; the hard-coded '
                '768s (PWAM dim/l_in/key/value, res_gate Linear(768,768) x2, '
                'LayerNorm(768)) use lang_dim',
         why='language width constant',
         edits=[
             ('num_heads_fusion=[1,1,1,1], fusion_drop=0.0):',
              'num_heads_fusion=[1,1,1,1], fusion_drop=0.0, lang_dim=768):',
              1),
             ('fusion = PWAM(768,', 'fusion = PWAM(lang_dim,', 1),
             ('                          768,  # l_in',
              '                          lang_dim,  # l_in', 1),
             ('                          768,  # key',
              '                          lang_dim,  # key', 1),
             ('                          768,  # value',
              '                          lang_dim,  # value', 1),
             ('nn.Linear(768, 768, bias=False)',
              'nn.Linear(lang_dim, lang_dim, bias=False)', 2),
             ('self.norms.append(nn.LayerNorm(768))',
              'self.norms.append(nn.LayerNorm(lang_dim))', 1),
         ]),
    dict(id='C5', file='test.py (class WrapperModel)', path='test.py',
         change='lang_proj = nn.Linear(768,256) -> nn.Linear(getattr(args,'
                "'lang_proj_in',768), getattr(args,'lang_proj_out',256))",
         why='width constants (lang_proj is never used in forward)',
         edits=[('self.lang_proj = nn.Linear(768,256)',
                 "self.lang_proj = nn.Linear(getattr(args, 'lang_proj_in', "
                 "768), getattr(args, 'lang_proj_out', 256))", 1)]),
    dict(id='C6', file='modeling/MaskFormerModel.py',
         change='pixel_decoder_init: transformer_dim_feedforward = 1024 -> '
                "cfg.MODEL.SEM_SEG_HEAD.get('TRANSFORMER_DIM_FEEDFORWARD', "
                '1024)',
         why='hard-coded FFN width of the MSDeformAttn encoder layers',
         edits=[('transformer_dim_feedforward = 1024',
                 "transformer_dim_feedforward = cfg.MODEL.SEM_SEG_HEAD.get("
                 "'TRANSFORMER_DIM_FEEDFORWARD', 1024)", 1)]),
]

HARNESS_NOTES = [
    "test.py cannot be imported (module-level torchvision/transforms/utils "
    "imports): the harness extracts class WrapperModel verbatim from "
    "(patched) test.py with ast and execs it with torch/nn/F only.",
    "test.py main() is replicated in .dev_scripts/"
    "make_official_fixture.py build_model(): lavt(pretrained='', "
    "args).backbone, MultiModalBert(BertConfig(...), "
    "embed_dim=backbone.embed_dim, ...) instead of from_pretrained(hub "
    "name), pooler=None, MaskFormerHead(cfg, input_shape) with test.py cfg "
    "keys (values from config.json), WrapperModel.",
    "MSDeformAttn: no patch needed - the official ms_deform_attn.py already "
    "calls the pure-PyTorch ms_deform_attn_core_pytorch (the CUDA "
    "MSDeformAttnFunction call is commented out in the repo).",
    "timm and mmseg are small stand-in modules (timm.models.layers "
    "DropPath/to_2tuple/trunc_normal_, mmseg.utils.get_root_logger). fvcore "
    "installed from PyPI.",
    "train_mode_check runs with torch.manual_seed(seed) just before its "
    "forward (dropout / drop-path draws).",
]

RANDOMIZATION = (
    'after construction with torch.manual_seed(seed): every floating-point '
    'entry of state_dict (in state_dict order, global torch RNG) overwritten: '
    'LayerNorm/GroupNorm (incl. backbone channels_first LayerNorm) weights '
    '1+N(0,0.05); keys ending in bias/_bias N(0,0.02); everything else '
    'N(0,0.05). Non-float buffers (relative_position_index) kept as built. '
    'Model in eval().')
