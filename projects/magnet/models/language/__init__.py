from .bert_encoder import BertLanguageEncoder

__all__ = ['BertLanguageEncoder']
