# The provider page's Perl snippet (LWP, multipart/form-data), run against smsq's gateway.
# smsq's changes, nothing else: the two `use` lines the snippet needs to run, URL/login/apiKey
# read from the environment, and the answer printed.
use LWP::UserAgent;
use HTTP::Request::Common;

my $userAgent = new LWP::UserAgent;
$userAgent->protocols_allowed( [ 'https'] );

my $request = POST($ENV{'SMSQ_GATEWAY_URL'},
[ 'login' => $ENV{'SMSQ_GATEWAY_LOGIN'}, 'apiKey' => $ENV{'SMSQ_GATEWAY_API_KEY'}, 'smsData' => '<DATA><MESSAGE><![CDATA[envoi de SMS en perl avec www.allmysms.com]]></MESSAGE><TPOA>EXPEDITEUR</TPOA><SMS><MOBILEPHONE>33612345678</MOBILEPHONE></SMS></DATA>'],
Content_Type => 'multipart/form-data');

my $response = $userAgent->request($request);
print $response->content;
