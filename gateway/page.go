package gateway

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"path"
)

//go:embed web
var web embed.FS

var pageTmpl = template.Must(template.ParseFS(web, "web/index.html"))

// Page serves the browser page: GET / gives index.html with the WHIP and
// events paths filled in; /static/ its script and style. Plain HTML and JS,
// nothing to build. The page sends the microphone over WHIP and shows the
// call's transcript from the events stream (Events).
func Page(whipPath, eventsPath string) (http.Handler, error) {
	var index bytes.Buffer
	if err := pageTmpl.Execute(&index, struct{ WHIP, Events string }{whipPath, eventsPath}); err != nil {
		return nil, err
	}
	assets := map[string]string{"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		if r.URL.Path == "/" {
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; media-src 'self'")
			h.Set("Permissions-Policy", "microphone=(self)")
			w.Write(index.Bytes())
			return
		}
		name := path.Base(r.URL.Path)
		ctype, ok := assets[name]
		if !ok || r.URL.Path != "/static/"+name {
			http.NotFound(w, r)
			return
		}
		b, err := web.ReadFile("web/" + name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		h.Set("Content-Type", ctype)
		w.Write(b)
	}), nil
}
