"""The template gallery: ready label configs in Label Studio's tags (each is validated by the tests)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Template", "TEMPLATES", "template"]


@dataclass(frozen=True)
class Template:
    key: str
    title: str
    kind: str  # text, image, audio
    description: str
    config: str


TEMPLATES: tuple[Template, ...] = (
    Template("text-classification", "Text classification", "text", "Pick one class per text.", """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single" showInline="true">
    <Choice value="Positive" hotkey="1"/>
    <Choice value="Negative" hotkey="2"/>
    <Choice value="Neutral" hotkey="3"/>
  </Choices>
</View>
"""),
    Template("multi-label", "Multi-label classification", "text", "Tick every topic that applies.", """<View>
  <Text name="text" value="$text"/>
  <Choices name="topics" toName="text" choice="multiple">
    <Choice value="Billing"/>
    <Choice value="Shipping"/>
    <Choice value="Returns"/>
    <Choice value="Other"/>
  </Choices>
</View>
"""),
    Template("named-entities", "Named entities", "text", "Mark spans of text as people, organizations, places.",
             """<View>
  <Labels name="label" toName="text">
    <Label value="PER" background="#ef4444" hotkey="p"/>
    <Label value="ORG" background="#3b82f6" hotkey="o"/>
    <Label value="LOC" background="#10b981" hotkey="l"/>
    <Label value="MISC" background="#f59e0b" hotkey="m"/>
  </Labels>
  <Text name="text" value="$text"/>
</View>
"""),
    Template("sentiment", "Sentiment with rating", "text", "Sentiment plus a 1-5 rating.", """<View>
  <Header value="How does the author feel?"/>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single-radio" showInline="true">
    <Choice value="Positive"/>
    <Choice value="Negative"/>
    <Choice value="Mixed"/>
  </Choices>
  <Rating name="rating" toName="text" maxRating="5"/>
</View>
"""),
    Template("image-classification", "Image classification", "image", "One class per image.", """<View>
  <Image name="image" value="$image"/>
  <Choices name="class" toName="image" choice="single">
    <Choice value="Cat"/>
    <Choice value="Dog"/>
    <Choice value="Other"/>
  </Choices>
</View>
"""),
    Template("object-detection", "Object detection (boxes)", "image", "Draw labeled bounding boxes.", """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Car" background="#3b82f6"/>
    <Label value="Person" background="#ef4444"/>
  </RectangleLabels>
</View>
"""),
    Template("polygons", "Polygons", "image", "Outline regions with polygons.", """<View>
  <Image name="image" value="$image"/>
  <PolygonLabels name="label" toName="image">
    <Label value="Building" background="#f59e0b"/>
    <Label value="Road" background="#6b7280"/>
  </PolygonLabels>
</View>
"""),
    Template("keypoints", "Keypoints", "image", "Place labeled points.", """<View>
  <Image name="image" value="$image"/>
  <KeyPointLabels name="kp" toName="image">
    <Label value="Left eye" background="#10b981"/>
    <Label value="Right eye" background="#3b82f6"/>
  </KeyPointLabels>
</View>
"""),
    Template("audio-classification", "Audio classification", "audio", "One class per clip.", """<View>
  <Audio name="audio" value="$audio"/>
  <Choices name="class" toName="audio" choice="single">
    <Choice value="Speech"/>
    <Choice value="Music"/>
    <Choice value="Noise"/>
  </Choices>
</View>
"""),
    Template("audio-transcription", "Audio transcription", "audio", "Type what is said.", """<View>
  <Audio name="audio" value="$audio"/>
  <TextArea name="transcription" toName="audio" rows="4" editable="true" maxSubmissions="1"/>
</View>
"""),
)

_BY_KEY = {t.key: t for t in TEMPLATES}


def template(key: str) -> Template | None:
    return _BY_KEY.get(key)
