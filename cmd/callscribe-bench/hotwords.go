package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/callscribe/callscribe/asr"
	"github.com/callscribe/callscribe/media"
)

// hotwordSentences say 24 phrases a contact center would boost (brands,
// products, names) that the model, trained on podcasts and audiobooks,
// mostly does not know.
var hotwordSentences = []struct{ phrase, sentence string }{
	{"Zendesk", "please open a Zendesk ticket for this customer"},
	{"Salesforce", "I updated the record in Salesforce this morning"},
	{"Kubernetes", "the outage was caused by our Kubernetes cluster"},
	{"Twilio", "we send the text messages through Twilio"},
	{"Genesys", "the call was routed by Genesys to the wrong queue"},
	{"Xfinity", "my Xfinity router keeps restarting at night"},
	{"PayPal", "can I pay the invoice with PayPal instead"},
	{"Spotify", "the family plan for Spotify was charged twice"},
	{"Lufthansa", "my Lufthansa flight to Munich was cancelled"},
	{"Qualtrics", "the survey link from Qualtrics does not open"},
	{"Shopify", "our Shopify store stopped taking orders"},
	{"Okta", "I cannot sign in because Okta rejects my code"},
	{"Nguyen", "my name is Linh Nguyen and I am calling about my bill"},
	{"Siobhan", "could you transfer me to Siobhan in accounts"},
	{"Krzysztof", "Krzysztof from support promised me a refund"},
	{"Acme Cloud", "we moved all our servers to Acme Cloud last year"},
	{"Hyundai", "the Hyundai dealer never called me back"},
	{"Vodafone", "I switched from Vodafone to a cheaper plan"},
	{"Medicaid", "does this clinic accept Medicaid patients"},
	{"Ethereum", "the wallet shows my Ethereum balance as zero"},
	{"Nordstrom", "I returned the shoes to Nordstrom on Friday"},
	{"Deloitte", "the auditors from Deloitte need the report"},
	{"Accenture", "an engineer from Accenture will install it"},
	{"Callscribe", "the transcript from Callscribe arrived in seconds"},
}

// unrelatedHotwords are boosted on speech that never says them: boosting
// must not hurt the rest.
const unrelatedHotwords = "Zendesk, Salesforce, Kubernetes, Twilio, Genesys, Xfinity, Okta, Nguyen, Krzysztof, Acme Cloud, Deloitte, Accenture"

// hotwordEval measures hotwords on speech made with espeak-ng (three voices,
// two rates, 16 and 8 kHz): how many of the phrases come out right with
// and without boosting them, the word error rate of the sentences, and the
// word error rate of the model's test WAVs with unrelated phrases boosted.
func hotwordEval(o options, w io.Writer) error {
	model := modelDir(o)
	if err := asr.InitRuntime("", "cpu"); err != nil {
		return err
	}
	info, err := asr.LoadModelInfo(asr.ModelFiles{Dir: model})
	if err != nil {
		return err
	}
	b, err := asr.NewBatcher(info, asr.BatcherOptions{Decoding: asr.ModifiedBeamSearch, Workers: o.cores})
	if err != nil {
		return err
	}
	defer b.Close()
	tmp, err := os.MkdirTemp("", "hotwords")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var sigs [][]float32
	var refs, phrases, wavs []string
	voices := []string{"en-us", "en-gb", "en-us+f3"}
	for i, s := range hotwordSentences {
		for k, rate := range []int{16000, 8000} {
			voice, speed := voices[(i+k)%len(voices)], []string{"150", "175"}[(i+k)%2]
			wav := filepath.Join(tmp, fmt.Sprintf("h%02d-%d.wav", i, rate))
			if out, err := exec.Command("espeak-ng", "-v", voice, "-s", speed, "-w", wav+".raw.wav", s.sentence).CombinedOutput(); err != nil {
				return fmt.Errorf("espeak-ng: %v %s", err, out)
			}
			if out, err := exec.Command("sox", wav+".raw.wav", "-r", fmt.Sprint(rate), "-b", "16", "-c", "1", wav, "pad", "0.3", "0.3").CombinedOutput(); err != nil {
				return fmt.Errorf("sox: %v %s", err, out)
			}
			x, err := read16k(wav)
			if err != nil {
				return err
			}
			sigs, refs, phrases = append(sigs, x), append(refs, s.sentence), append(phrases, s.phrase)
			wavs = append(wavs, wav)
		}
	}
	var list []string
	for _, s := range hotwordSentences {
		list = append(list, s.phrase)
	}
	tok := asr.NewTokenizer(info)
	all, err := asr.ParsePhrases(strings.Join(list, ","))
	if err != nil {
		return err
	}
	decode := func(sigs [][]float32, phrases []asr.Phrase) ([]string, error) {
		var so asr.StreamOptions
		if len(phrases) > 0 {
			g, err := asr.NewContextGraph(tok, phrases, 0)
			if err != nil {
				return nil, err
			}
			so.Hotwords = g
		}
		res, err := asr.DecodeAllWith(b, sigs, 0, so)
		if err != nil {
			return nil, err
		}
		out := make([]string, len(res))
		for i, r := range res {
			out[i] = asr.FinalText(r)
		}
		return out, nil
	}
	score := func(texts []string) (recall int, errs, words int) {
		for i, t := range texts {
			if strings.Contains(" "+t+" ", " "+strings.ToUpper(phrases[i])+" ") {
				recall++
			}
			e, n := asr.WordErrors(refs[i], t)
			errs, words = errs+e, words+n
		}
		return
	}
	fmt.Fprintf(w, "hotwords: %d phrases in %d espeak-ng utterances (3 voices, 2 rates, 16 and 8 kHz), modified beam search\n",
		len(list), len(sigs))
	withScore := func(ps []asr.Phrase, score float32) []asr.Phrase {
		out := append([]asr.Phrase{}, ps...)
		for i := range out {
			out[i].Score = score
		}
		return out
	}
	peer := o.peer
	if peer {
		if _, err := os.Stat(filepath.Join(o.peerDir, "sherpa-onnx-node")); err != nil {
			fmt.Fprintf(w, "  (no peer: run scripts/setup --peer)\n")
			peer = false
		}
	}
	for _, c := range []struct {
		name    string
		phrases []asr.Phrase
	}{{"without hotwords", nil}, {"24 phrases, score 1.5", withScore(all, 1.5)}, {"24 phrases, score 3", withScore(all, 3)},
		{"24 phrases, score 5", withScore(all, 5)}} {
		texts, err := decode(sigs, c.phrases)
		if err != nil {
			return err
		}
		r, e, n := score(texts)
		fmt.Fprintf(w, "  %-28s callscribe: phrases right %2d of %d (%.0f%%), WER %.1f%%\n", c.name, r, len(texts), 100*float64(r)/float64(len(texts)), 100*float64(e)/float64(n))
		if !peer {
			continue
		}
		ptexts, err := peerHotwords(o, model, info, tmp, wavs, c.phrases)
		if err != nil {
			return err
		}
		r, e, n = score(ptexts)
		same := 0
		for i := range texts {
			if texts[i] == ptexts[i] {
				same++
			}
		}
		fmt.Fprintf(w, "  %-28s peer:       phrases right %2d of %d (%.0f%%), WER %.1f%%; %d of %d texts equal\n", "", r, len(ptexts),
			100*float64(r)/float64(len(ptexts)), 100*float64(e)/float64(n), same, len(texts))
	}
	// The model's test WAVs with unrelated phrases boosted.
	names, tsigs, err := testWavs(model)
	if err != nil {
		return err
	}
	unrelated, _ := asr.ParsePhrases(unrelatedHotwords)
	for _, c := range []struct {
		name    string
		phrases []asr.Phrase
	}{{"test WAVs, no hotwords", nil}, {"test WAVs, 12 unrelated, 1.5", withScore(unrelated, 1.5)},
		{"test WAVs, 12 unrelated, 3", withScore(unrelated, 3)}} {
		texts, err := decode(tsigs, c.phrases)
		if err != nil {
			return err
		}
		e, n := 0, 0
		for i, t := range texts {
			x, y := asr.WordErrors(names[i], t)
			e, n = e+x, n+y
		}
		fmt.Fprintf(w, "  %-28s WER %.1f%% (%d errors in %d words)\n", c.name, 100*float64(e)/float64(n), e, n)
	}
	return nil
}

// testWavs reads the model's test WAVs at 16 kHz with their reference texts.
func testWavs(model string) (refs []string, sigs [][]float32, err error) {
	b, err := os.ReadFile(filepath.Join(model, "test_wavs", "trans.txt"))
	if err != nil {
		return nil, nil, err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		name, text, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		x, err := read16k(filepath.Join(model, "test_wavs", name))
		if err != nil {
			return nil, nil, err
		}
		refs, sigs = append(refs, text), append(sigs, x)
	}
	return refs, sigs, nil
}

// peerHotwords decodes the WAVs with the sherpa-onnx peer (modified beam
// search, 4 paths) boosting phrases: spelled with a vocabulary that gives
// each piece the score Callscribe's tokenizer gives it, so both sides boost
// the same token sequences.
func peerHotwords(o options, model string, info *asr.ModelInfo, tmp string, wavs []string, phrases []asr.Phrase) ([]string, error) {
	peerDir, err := filepath.Abs(o.peerDir)
	if err != nil {
		return nil, err
	}
	env := append(os.Environ(), "NODE_PATH="+peerDir, "LD_LIBRARY_PATH="+filepath.Join(peerDir, "sherpa-onnx-linux-x64"),
		"PEER_DECODING="+asr.ModifiedBeamSearch, "PEER_ACTIVE_PATHS=4")
	if len(phrases) > 0 {
		var vocab, list strings.Builder
		for id, sym := range info.Tokens {
			if id > 2 {
				fmt.Fprintf(&vocab, "%s\t%f\n", sym, asr.PieceScore(id))
			}
		}
		for _, p := range phrases {
			fmt.Fprintf(&list, "%s :%g\n", strings.ToUpper(p.Text), p.Score)
		}
		vf, hf := filepath.Join(tmp, "bpe.vocab"), filepath.Join(tmp, "hotwords.txt")
		if err := os.WriteFile(vf, []byte(vocab.String()), 0o644); err != nil {
			return nil, err
		}
		if err := os.WriteFile(hf, []byte(list.String()), 0o644); err != nil {
			return nil, err
		}
		env = append(env, "PEER_BPE_VOCAB="+vf, "PEER_HOTWORDS="+hf)
	}
	args := append([]string{"scripts/peer/decode.js", model, filepath.Base(info.Files.Encoder), filepath.Base(info.Files.Decoder),
		filepath.Base(info.Files.Joiner)}, wavs...)
	cmd := exec.Command("node", args...)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("peer: %w", err)
	}
	texts := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if name, text, ok := strings.Cut(line, "\t"); ok {
			texts[name] = text
		}
	}
	res := make([]string, len(wavs))
	for i, wv := range wavs {
		res[i] = texts[filepath.Base(wv)]
	}
	return res, nil
}

// read16k reads a WAV as 16 kHz samples (resampled with the filter the
// model expects).
func read16k(path string) ([]float32, error) {
	a, err := media.ReadWAVFile(path)
	if err != nil {
		return nil, err
	}
	if a.SampleRate == 16000 {
		return a.Samples, nil
	}
	return media.ResampleFilter(a.Samples, a.SampleRate, 16000, media.FilterKaldi)
}
