# MagNet, paper setting: Swin-B (window 12, ImageNet-22K init) + BERT-base
# (uncased), language fusion at every stage, Mask2Former-style 1-query head.
# Architecture of the released checkpoints (magnet_refcoco.pth ...).
custom_imports = dict(imports=['projects.magnet'], allow_failed_imports=False)

data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size_divisor=32)

model = dict(
    type='MagNet',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='MultimodalSwin',
        pretrain_img_size=384,
        embed_dims=128,
        depths=(2, 2, 18, 2),
        num_heads=(4, 8, 16, 32),
        window_size=12,
        mlp_ratio=4,
        qkv_bias=True,
        drop_path_rate=0.3,
        patch_norm=True,
        text_channels=768,
        pwam_heads=(1, 1, 1, 1),
        fusion_dropout=0.0,
        pool_sizes=(1, 2, 3, 6),
        use_alignment=True,
        # official Swin / mmseg / mmpretrain checkpoints all load
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/swin_base_patch4_window12_384_22k.pth')),
    text_encoder=dict(
        type='BertLanguageEncoder',
        # bert_cfg: the encoder's default, bert-base-uncased
        # (BERT_BASE_UNCASED in bert_encoder.py; building needs no network)
        stage_ends=(3, 6, 9, 12),
        vision_channels=(128, 256, 512, 1024),
        fusion_heads=(1, 1, 1, 1),
        fusion_dropout=0.0,
        mask_mode='official',
        # hub name or local folder; read only by init_weights()
        init_cfg=dict(type='Pretrained', checkpoint='bert-base-uncased')),
    decode_head=dict(
        type='MagNetHead',
        in_channels=(128, 256, 512, 1024),
        strides=(4, 8, 16, 32),
        feat_channels=256,  # official CONVS_DIM
        mask_channels=256,  # MASK_DIM: the pixel embeddings
        num_queries=1,
        num_classes=1,
        # deformable-attention encoder over all four levels (stride 4 too)
        pixel_decoder=dict(
            type='MSDeformAttnPixelDecoder',
            encoder=dict(
                num_layers=4,  # TRANSFORMER_ENC_LAYERS
                layer_cfg=dict(
                    self_attn_cfg=dict(num_heads=8, num_points=4,
                                       dropout=0.0),
                    ffn_cfg=dict(feedforward_channels=1024, ffn_drop=0.0)))),
        # Mask2Former masked-attention decoder (official DEC_LAYERS - 1)
        transformer_decoder=dict(
            type='MaskedAttentionDecoder',
            hidden_channels=256,
            num_heads=8,
            num_layers=9,
            feedforward_channels=2048)),
    # sentence projection: the alignment loss compares lang_proj(sentence)
    # with the head's 256-d pixel embeddings (present in released weights)
    lang_proj_dim=256,
    # --- training-only objectives (never run at inference; set to None to
    # ablate). Their published details are incomplete: the values below are
    # this project's defaults, see docs/training.md.
    mask_grounding=dict(
        type='MaskGroundingHead',
        text_channels=768,
        visual_channels=1024,  # Y_4, the stride-32 multimodal map
        visual_level=-1,
        num_layers=1,
        num_heads=12,
        vocab_size=30522,
        tie_word_embeddings=True,
        masking=dict(type='TokenMasker', ratio=0.15, mask_prob=0.9,
                     random_prob=0.0),
        loss=dict(type='mmseg.CrossEntropyLoss', use_sigmoid=False,
                  loss_weight=1.0, avg_non_ignore=True,
                  loss_name='loss_mg')),
    alignment_loss=dict(
        type='CrossModalAlignmentLoss',
        temperature=0.07,
        p2p_weight=1.0,
        p2t_weight=1.0),
    train_cfg=dict(),
    test_cfg=dict(mode='whole', output_size='input'))
