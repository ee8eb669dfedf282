"""Sampling arms: what happens to the condition or the guidance at sampling time (docs/design.md, section 2).

One module per arm, registered with `@register_arm`, one YAML per arm in conf/arms/. The sweep crosses each
mode with every arm that applies to it and every guidance scale.
"""
