# The provider page's Ruby snippet (Net::HTTP, form-urlencoded, TLS), run against smsq's gateway.
# smsq's changes, nothing else: the `require` lines it needs, URL/login/apiKey read from the
# environment, and the answer printed.
require 'net/http'
require 'uri'

url = URI.parse(ENV['SMSQ_GATEWAY_URL'])
req = Net::HTTP::Post.new(url.path)
req.set_form_data({'login'=>ENV['SMSQ_GATEWAY_LOGIN'],'apiKey'=>ENV['SMSQ_GATEWAY_API_KEY'],'smsData'=>'<DATA><MESSAGE><![CDATA[envoi de SMS en windev avec www.allmysms.com]]></MESSAGE><TPOA>EXPEDITEUR</TPOA><SMS><MOBILEPHONE>33612345678</MOBILEPHONE></SMS></DATA>'}, '&')
http = Net::HTTP.new(url.host, url.port)
http.use_ssl = true
res = http.start {|http| http.request(req) }
puts res.body
