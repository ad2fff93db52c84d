"""Counts words in uploaded text files, or in text sent as JSON. Shows multipart uploads."""

from collections import Counter
from typing import Optional

from fastapi import UploadFile
from haystack import component

from hayhooks import BasePipelineWrapper


@component
class WordCounter:
    @component.output_types(counts=dict)
    def run(self, texts: list[str], top: int = 5):
        words = Counter(w.strip(".,;:!?\"'()").lower() for text in texts for w in text.split())
        words.pop("", None)
        return {"counts": dict(words.most_common(top))}


class PipelineWrapper(BasePipelineWrapper):
    def setup(self) -> None:
        from haystack import Pipeline

        self.pipeline = Pipeline()
        self.pipeline.add_component("counter", WordCounter())

    def run_api(self, files: Optional[list[UploadFile]] = None, text: str = "", top: int = 5) -> dict:
        """Count the most frequent words.

        Args:
            files: Text files to count words in (multipart upload).
            text: Text to count words in, when not uploading files.
            top: How many of the most frequent words to return.
        """
        texts = [f.file.read().decode("utf-8", errors="replace") for f in files or []]
        if text:
            texts.append(text)
        return self.pipeline.run({"counter": {"texts": texts, "top": top}})["counter"]["counts"]
