"""The harness's configuration: the schema (`schema`), the building blocks of its fields and artifact keys
(`fields`), and the step from a composed Hydra config to checked dataclasses (`compose`). The research defaults,
each question's primary contrasts, live in conf/report/default.yaml."""

from harness.config.compose import default_report, register_configs, validate
from harness.config.fields import CONF_DIR, key_fields, param, section
from harness.config.schema import (CAPTION_PROMPTS, CONTRASTS, DATA_KEYS, MODE_KEYS, QUESTIONS,
                                   WORLD_PROMPT_KINDS, ArmConfig, ClipConfig, ConditioningConfig, Config, DataConfig,
                                   DecoderConfig, EvaluatorConfig, HFConfig, LoggerConfig, MentionConfig,
                                   PrimaryContrast, PriorConfig, ProbeConfig, ReportConfig, ShapesConfig, SweepConfig,
                                   TrainConfig)

__all__ = ["CAPTION_PROMPTS", "CONF_DIR", "CONTRASTS", "DATA_KEYS", "MODE_KEYS", "QUESTIONS",
           "WORLD_PROMPT_KINDS", "ArmConfig", "ClipConfig", "ConditioningConfig", "Config", "DataConfig",
           "DecoderConfig", "EvaluatorConfig", "HFConfig", "LoggerConfig", "MentionConfig", "PrimaryContrast",
           "PriorConfig", "ProbeConfig", "ReportConfig", "ShapesConfig", "SweepConfig", "TrainConfig",
           "default_report", "key_fields", "param", "register_configs", "section", "validate"]
